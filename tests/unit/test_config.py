from decimal import Decimal

import pytest

from firetape.config import ConfigError, apply_env, load_config


def write(tmp_path, text):
    path = tmp_path / "firetape.toml"
    path.write_text(text)
    return path


def test_load_when_sample_keys_given_then_values_are_typed(tmp_path):
    path = write(tmp_path, """
[portfolio]
initial_cash = 1000000
[execution]
fill = "close"
slippage_bps = 1.5
commission_per_share = 0.005
commission_per_order = 1
[sizing]
method = "fixed_quantity"
quantity = 100
""")
    config = load_config(path, environ={})
    assert config.portfolio.initial_cash == Decimal(1_000_000)
    assert config.execution.fill == "close"
    assert config.execution.commission_per_share == Decimal("0.005")
    assert config.sizing.quantity == Decimal(100)


def test_load_when_unknown_key_then_error_names_the_key(tmp_path):
    path = write(tmp_path, "[risk]\nmax_drawdwn = 0.1\n")
    with pytest.raises(ConfigError, match=r"risk\.max_drawdwn: unknown key"):
        load_config(path, environ={})


def test_load_when_wrong_type_then_error_names_the_key(tmp_path):
    path = write(tmp_path, "[portfolio]\ninitial_cash = \"lots\"\n")
    with pytest.raises(ConfigError, match=r"portfolio\.initial_cash"):
        load_config(path, environ={})


def test_load_when_unknown_section_then_error_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"riks: unknown key"):
        load_config(write(tmp_path, "[riks]\nx = 1\n"), environ={})


def test_load_when_unknown_strategy_then_error_names_it(tmp_path):
    path = write(tmp_path, '[run]\nstrategies = ["sma_cross", "turtle_soup"]\n')
    with pytest.raises(ConfigError, match="turtle_soup"):
        load_config(path, environ={})


def test_load_when_strategy_param_unknown_then_error_names_it(tmp_path):
    path = write(tmp_path, "[strategies.sma_cross]\nfastest = 3\n")
    with pytest.raises(ConfigError, match="fastest"):
        load_config(path, environ={})


def test_override_when_env_variable_set_then_it_wins_over_the_file(tmp_path):
    path = write(tmp_path, "[risk]\nmax_drawdown = 0.2\n")
    config = load_config(path, environ={"FIRETAPE_RISK__MAX_DRAWDOWN": "0.05",
                                        "FIRETAPE_STRATEGIES__SMA_CROSS__FAST": "5",
                                        "FIRETAPE_KAFKA_HOME": "/not/a/config/key"})
    assert config.risk.max_drawdown == 0.05
    assert config.strategies["sma_cross"]["fast"] == 5


def test_override_when_env_value_is_not_toml_then_it_is_a_string():
    assert apply_env({}, {"FIRETAPE_RUN__ACCOUNT": "acct-7"}) == {"run": {"account": "acct-7"}}


def test_load_when_no_file_then_defaults_match_the_documented_ones():
    config = load_config(None, environ={})
    assert config.run.strategies == ["sma_cross"]
    assert config.sizing.method == "fixed_quantity" and config.sizing.quantity == 100
    assert config.execution.fill == "next_open"
    assert config.risk.max_symbol_exposure == 0.10 and config.risk.max_gross_exposure == 0.30


def test_load_when_file_missing_then_error_names_it(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_load_when_documented_sample_then_it_states_exactly_the_defaults():
    from pathlib import Path

    import msgspec

    sample = load_config(Path(__file__).parents[2] / "config" / "firetape.sample.toml", environ={})
    defaults = load_config(None, environ={})
    assert msgspec.structs.replace(sample, strategies={}) == defaults


def test_settings_when_values_equal_defaults_or_only_logging_differs_then_nothing_remains():
    from pathlib import Path

    from firetape.config import settings_of

    sample = Path(__file__).parents[2] / "config" / "firetape.sample.toml"
    assert settings_of(load_config(sample, environ={})) == {}
    assert settings_of(load_config(None, environ={"FIRETAPE_LOG__LEVEL": '"debug"'})) == {}
    changed = load_config(None, environ={"FIRETAPE_STRATEGIES__SMA_CROSS__FAST": "5",
                                         "FIRETAPE_RISK__MAX_DRAWDOWN": "0.05"})
    assert settings_of(changed) == {"strategies": {"sma_cross": {"fast": 5}},
                                    "risk": {"max_drawdown": 0.05}}
