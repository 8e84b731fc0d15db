"""A local single-node Apache Kafka (KRaft, broker and controller in one JVM) without Docker.

Life cycle: `fetch` the pinned release's jars from Maven Central once into a cache shared by
every checkout, `format_storage` a persistent data directory once, `start` the JVM in the
background and `wait_until_ready` until it answers a metadata request, `stop` it with SIGTERM
(SIGKILL after a timeout), and `status` to see whether it runs and answers.

Everything the broker writes lives in the data directory: server.properties, the log4j2
configuration, the KRaft metadata and topic logs, `kafka.log` and `kafka.pid`.

Paths and ports come from the environment (see `BrokerConfig.from_env`). When KAFKA_BOOTSTRAP
is set an external cluster is used and nothing here is started (see `external_bootstrap`).
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from firetape.kafka.admin import cluster_answers

KAFKA_VERSION = "4.1.2"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "512m"
MIN_JAVA = 17                      # Kafka 4.x brokers need Java 17 or newer
HOST = "127.0.0.1"                 # never exposed beyond the machine
NODE_ID = 1
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
FETCH_TIMEOUT_S = 900.0


class BrokerError(Exception):
    """An expected failure (no Java, fetch failed, port busy, start-up timeout...).

    The message is written for the operator; the CLI prints it without a traceback.
    """


@dataclass(frozen=True)
class BrokerConfig:
    """Where the local broker keeps its jars and data, and where it listens."""

    data_dir: Path
    cache_root: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_PORT + 1
    version: str = KAFKA_VERSION
    heap: str = DEFAULT_HEAP

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> BrokerConfig:
        """The configuration from FIRETAPE_KAFKA_* variables, then explicit `overrides`.

        FIRETAPE_KAFKA_HOME: root of the jar cache (default ~/.cache/firetape/kafka), holding
        one `<version>/lib` per Kafka version. FIRETAPE_KAFKA_DIR: the data directory (default
        `.kafka` in the current directory). FIRETAPE_KAFKA_PORT (default 9092) and
        FIRETAPE_KAFKA_CONTROLLER_PORT (default: the port plus one).
        """
        env = os.environ if env is None else env
        port = _port_from(env, "FIRETAPE_KAFKA_PORT", DEFAULT_PORT)
        values = dict(
            data_dir=Path(env.get("FIRETAPE_KAFKA_DIR") or Path.cwd() / ".kafka"),
            cache_root=Path(env.get("FIRETAPE_KAFKA_HOME")
                            or Path.home() / ".cache" / "firetape" / "kafka"),
            port=port,
            controller_port=_port_from(env, "FIRETAPE_KAFKA_CONTROLLER_PORT", port + 1),
        )
        values.update(overrides)
        values["data_dir"] = Path(values["data_dir"]).absolute()
        values["cache_root"] = Path(values["cache_root"]).expanduser().absolute()
        return cls(**values)

    @property
    def lib_dir(self) -> Path:
        return self.cache_root / self.version / "lib"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft"


@dataclass(frozen=True)
class BrokerStatus:
    """What `status` found. `external`: KAFKA_BOOTSTRAP names the cluster, nothing local."""

    running: bool
    answering: bool
    bootstrap: str
    version: str | None
    pid: int | None
    external: bool = False


def external_bootstrap(env: dict[str, str] | None = None) -> str | None:
    """The external cluster's bootstrap servers if KAFKA_BOOTSTRAP is set, else None."""
    env = os.environ if env is None else env
    return env.get("KAFKA_BOOTSTRAP") or None


# --- fetch --------------------------------------------------------------------------------

def fetch(config: BrokerConfig) -> bool:
    """Copy the pinned Kafka jars and the log4j2 binding into `config.lib_dir` with Maven.

    Returns False when they are already there (nothing fetched), True after a fetch. Maven
    writes to a staging directory that is renamed at the end, so an interrupted fetch never
    leaves a half-filled lib directory that would later be mistaken for a complete one.
    """
    if is_fetched(config):
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not on PATH; it is needed once to fetch Apache Kafka "
            f"{config.version} from Maven Central into {config.lib_dir}")
    find_java()  # Maven itself needs it; fail with the clearer message first
    config.lib_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = config.lib_dir.with_name(f"lib.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="firetape-kafka-pom-") as scratch:
        pom = Path(scratch) / "pom.xml"
        pom.write_bytes(resources.files("firetape.kafka").joinpath("pom.xml").read_bytes())
        command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                   f"-DoutputDirectory={staging}", f"-Dkafka.version={config.version}",
                   "-DincludeScope=runtime", "-Dstyle.color=never"]
        try:
            done = subprocess.run(command, cwd=scratch, capture_output=True, text=True,
                                  timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(f"Maven did not finish fetching Kafka {config.version} "
                              f"within {FETCH_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0 or not (staging / _broker_jar(config)).is_file():
        shutil.rmtree(staging, ignore_errors=True)
        output = _tail_text(_maven_errors(done.stdout + done.stderr), 25)
        raise BrokerError(f"fetching Apache Kafka {config.version} from Maven Central failed "
                          f"(mvn exit {done.returncode}):\n{output}")
    try:
        os.rename(staging, config.lib_dir)
    except OSError:
        # Another process finished the same fetch first; its copy is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
        if not is_fetched(config):
            raise
    return True


_MAVEN_BOILERPLATE = re.compile(
    r"\x1b\[[0-9;]*m|^\[ERROR\] *$|^\[ERROR\] (To see|Re-run|For more|\[Help).*$", re.MULTILINE)


def _maven_errors(output: str) -> str:
    # Maven's failure says what it could not resolve in its first lines; the advice after
    # that (re-run with -X, wiki links) is noise for someone who just ran `kafka up`.
    return "\n".join(line for line in _MAVEN_BOILERPLATE.sub("", output).splitlines()
                     if line.strip())


def _broker_jar(config: BrokerConfig) -> str:
    return f"kafka_2.13-{config.version}.jar"


def is_fetched(config: BrokerConfig) -> bool:
    """True when the pinned release's jars are in the cache."""
    return (config.lib_dir / _broker_jar(config)).is_file()


# --- format -------------------------------------------------------------------------------

def format_storage(config: BrokerConfig) -> bool:
    """Format the KRaft storage once; returns False when it was already formatted.

    The quorum is static (controller.quorum.voters), so no --standalone: the voter's address is
    not written into the metadata log and the ports may change between runs.
    """
    write_configuration(config)
    if (config.log_dirs / "meta.properties").is_file():
        return False
    if not is_fetched(config):
        raise BrokerError(f"Kafka {config.version} is not fetched into {config.lib_dir}; "
                          "run fetch first")
    command = [*_java_command(config, heap="256m"), "kafka.tools.StorageTool", "format",
               "-t", new_cluster_id(), "-c", str(config.properties_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BrokerError(f"formatting Kafka storage in {config.log_dirs} failed "
                          f"(exit {done.returncode}):\n{_tail_text(done.stdout + done.stderr, 25)}")
    return True


def new_cluster_id() -> str:
    """A cluster id as Kafka makes them: a random UUID, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka refuses ids that look like a command-line flag
            return text


def write_configuration(config: BrokerConfig) -> None:
    """(Re)write server.properties and the log4j2 configuration from `config`."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # The data directory may sit inside a checkout: keep it out of git without touching
    # the repository's own .gitignore.
    ignore = config.data_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    config.properties_path.write_text(server_properties(config))
    config.log4j_path.write_text(LOG4J2_PROPERTIES)


def server_properties(config: BrokerConfig) -> str:
    """The broker's server.properties for a one-node development cluster."""
    controller = f"{HOST}:{config.controller_port}"
    return f"""\
# Written by firetape.kafka.broker on every start; edit BrokerConfig, not this file.
process.roles=broker,controller
node.id={NODE_ID}
controller.quorum.voters={NODE_ID}@{controller}
listeners=PLAINTEXT://{HOST}:{config.port},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{HOST}:{config.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={config.log_dirs}
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first consumer group or transaction
# then creates its internal topic in well under a second on a 2-core machine.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
# Tests join groups one consumer at a time; do not wait for more members.
group.initial.rebalance.delay.ms=0
# Topics come from topics.REGISTRY (firetape topics create), never from a typo in a client.
auto.create.topics.enable=false
num.partitions=1
# Two cores: a couple of threads each instead of the defaults sized for servers.
num.network.threads=2
num.io.threads=4
background.threads=4
"""


LOG4J2_PROPERTIES = """\
# Written by firetape.kafka.broker. Everything goes to stdout, which is kafka.log.
status = warn
# Keep logging through the JVM's own shutdown (Kafka logs its clean shutdown steps).
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


# --- start / wait / stop ------------------------------------------------------------------

def start(config: BrokerConfig, timeout: float = START_TIMEOUT_S) -> int:
    """Fetch and format if needed, start the broker in the background and wait until it
    answers. Returns its pid; an already running broker is left alone and its pid returned.

    On failure the broker is stopped again and BrokerError carries the log's tail.
    """
    running = running_pid(config)
    if running is not None:
        return running
    ensure_ports_free(config)
    java = find_java()
    fetch(config)
    format_storage(config)
    _rotate_log(config)
    command = [*_java_command(config, java=java), "kafka.Kafka", str(config.properties_path)]
    pid = _spawn(command, config)
    config.pid_path.write_text(f"{pid}\n")
    try:
        wait_until_ready(config.bootstrap, timeout=timeout, pid=pid)
    except BrokerError as error:
        stop(config)
        raise BrokerError(f"{error}\n--- last lines of {config.log_path} ---\n"
                          f"{log_tail(config)}") from None
    return pid


def wait_until_ready(bootstrap: str, timeout: float = START_TIMEOUT_S,
                     pid: int | None = None) -> float:
    """Poll `bootstrap` with metadata requests until a broker answers; returns the seconds
    waited. Gives up early if process `pid` exits, and after `timeout` seconds."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        if pid is not None and not pid_alive(pid):
            raise BrokerError(f"Kafka (pid {pid}) exited during start-up")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"Kafka did not answer on {bootstrap} within {timeout:g} s")
        if cluster_answers(bootstrap, timeout=min(5.0, remaining)):
            return time.monotonic() - began
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def stop(config: BrokerConfig, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """Stop the broker: SIGTERM, wait up to `timeout` seconds, then SIGKILL.

    Returns the pid that was stopped, or None if no broker of this data directory was running.
    Only a process whose command line is this data directory's Kafka is ever signalled.
    """
    pid = running_pid(config)
    if pid is None:
        config.pid_path.unlink(missing_ok=True)
        return None
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL for 10 s")
            time.sleep(0.1)
    config.pid_path.unlink(missing_ok=True)
    return pid


def status(config: BrokerConfig, env: dict[str, str] | None = None) -> BrokerStatus:
    """Whether the broker runs and answers: the external cluster if KAFKA_BOOTSTRAP is set,
    else the local broker of `config`."""
    external = external_bootstrap(env)
    if external:
        up = cluster_answers(external)
        return BrokerStatus(running=up, answering=up, bootstrap=external, version=None,
                            pid=None, external=True)
    pid = running_pid(config)
    bootstrap = local_bootstrap(config)
    return BrokerStatus(running=pid is not None,
                        answering=pid is not None and cluster_answers(bootstrap),
                        bootstrap=bootstrap, version=config.version, pid=pid)


def log_tail(config: BrokerConfig, lines: int = 40) -> str:
    """The last `lines` lines of the broker's log, or a note that there is none."""
    try:
        text = config.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {config.log_path})"
    return _tail_text(text, lines) if text.strip() else "(the log is still empty)"


# --- processes ----------------------------------------------------------------------------

def running_pid(config: BrokerConfig) -> int | None:
    """The pid in the pid file if that process is alive and is this data directory's Kafka."""
    try:
        pid = int(config.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(pid) or not _is_our_broker(pid, config):
        return None
    return pid


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return False
    except ChildProcessError:
        pass  # not our child (started by another process): ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_broker(pid: int, config: BrokerConfig) -> bool:
    # A stale pid file may name a recycled pid; never signal a process that is not ours.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust the pid file
    except PermissionError:
        return False
    return b"kafka.Kafka" in cmdline and str(config.properties_path).encode() in cmdline


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _spawn(command: list[str], config: BrokerConfig) -> int:
    # posix_spawn rather than Popen: the broker outlives this process (the CLI exits after
    # `up`), and an abandoned Popen object warns when garbage-collected. setsid detaches it
    # from the terminal so a Ctrl-C in the shell does not kill it.
    log = os.open(config.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return os.posix_spawn(command[0], command, dict(os.environ), setsid=True,
                              file_actions=[
                                  (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                  (os.POSIX_SPAWN_DUP2, log, 1),
                                  (os.POSIX_SPAWN_DUP2, log, 2),
                              ])
    finally:
        os.close(log)


def _java_command(config: BrokerConfig, java: str | None = None,
                  heap: str | None = None) -> list[str]:
    heap = heap or config.heap
    # A small initial heap: on a shared 2-core laptop the JVM grows only as far as it needs.
    return [java or find_java(), "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config.log4j_path}",
            "-cp", f"{config.lib_dir}/*"]


def find_java() -> str:
    """The java executable ($JAVA_HOME/bin/java, else java on PATH), checked to be 17+."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise BrokerError(f"Java {MIN_JAVA}+ is needed to run Kafka but no java was found "
                          "(set JAVA_HOME or put java on PATH)")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    if found:
        major = int(found.group(1))
        if major == 1 and found.group(2):  # "1.8.0_x" is Java 8
            major = int(found.group(2))
        if major < MIN_JAVA:
            raise BrokerError(f"Kafka 4.x needs Java {MIN_JAVA}+, "
                              f"but {java} is Java {major}")
    return java


def ensure_ports_free(config: BrokerConfig) -> None:
    """Raise BrokerError naming the port if the broker or controller port is taken."""
    for port in (config.port, config.controller_port):
        if not port_is_free(port):
            raise BrokerError(
                f"port {port} on {HOST} is already in use (another Kafka?); stop it or choose "
                "other ports with FIRETAPE_KAFKA_PORT / FIRETAPE_KAFKA_CONTROLLER_PORT")


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if `port` can be bound on `host` (as Java binds it: with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _rotate_log(config: BrokerConfig) -> None:
    # Keep the previous run's log for a post-mortem; each start begins a fresh file.
    if config.log_path.exists():
        os.replace(config.log_path, config.log_path.with_suffix(".log.1"))


def local_bootstrap(config: BrokerConfig) -> str:
    """The local broker's address as its data directory's server.properties says, else the
    configured one (a broker may have been started with other ports than today's env)."""
    try:
        text = config.properties_path.read_text()
    except FileNotFoundError:
        return config.bootstrap
    found = re.search(r"^advertised\.listeners=PLAINTEXT://(\S+)$", text, re.MULTILINE)
    return found.group(1) if found else config.bootstrap


def _port_from(env, name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise BrokerError(f"{name} must be a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise BrokerError(f"{name} must be between 1 and 65535, got {port}")
    return port


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
