# One image for every firetape agent: `docker run IMAGE strategy` runs `firetape agent strategy`.
# Configuration comes only from the environment (see docker-compose.yml and docs/kafka.md).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY firetape/__init__.py firetape/__init__.py
RUN pip install --no-compile . && pip uninstall -y firetape

COPY . .
RUN pip install --no-compile --no-deps . \
    && useradd --system --uid 10001 --home-dir /app firetape \
    && mkdir -p /var/lib/firetape && chown firetape /var/lib/firetape

USER firetape
ENV FIRETAPE_AGENT_DIR=/var/lib/firetape \
    FIRETAPE_WEB_PORT=6066
EXPOSE 6066
ENTRYPOINT ["firetape", "agent"]
CMD ["strategy"]
