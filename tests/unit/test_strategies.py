"""Built-in strategies on crafted closes, and the plugin loader."""
from __future__ import annotations

import random
import textwrap

import msgspec
import numpy as np
import pandas as pd
import pytest

from schemas.signals import FLAT, LONG, SHORT
from strategies import (
    MeanReversion, MeanReversionParams, Momentum, MomentumParams, SmaCross, SmaCrossParams,
    builtin_names, make_params, resolve,
)
from tests.factories import bars_from_closes


def targets(strategy, closes) -> dict[int, tuple[int, float]]:
    """Bar index -> the target the strategy returned on that bar (no-change bars omitted)."""
    out = {}
    for t, bar in enumerate(bars_from_closes(closes)):
        target = strategy.on_bar(bar)
        if target is not None:
            out[t] = target
    return out


def directions(strategy, closes) -> dict[int, int]:
    return {t: direction for t, (direction, _) in targets(strategy, closes).items()}


# --- sma_cross -------------------------------------------------------------------------

def test_sma_cross_when_previous_diff_is_exactly_zero_then_cross_above_on_that_bar():
    # fast=2, slow=3: diff is 0 on bars 2 and 3 (flat), > 0 on bar 4.
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3))
    assert directions(strategy, [10.0, 10.0, 10.0, 10.0, 11.0]) == {4: LONG}


def test_sma_cross_when_rising_from_the_start_then_no_cross_is_signalled():
    # The first full diff (bar 2) is already > 0: no diff[t-1] <= 0 precedes it.
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3))
    assert directions(strategy, [10.0, 11.0, 12.0, 13.0, 14.0]) == {}


def test_sma_cross_when_cross_on_first_full_bar_then_waits_for_the_next_bar():
    # Bar 2 is the first with both windows full; its diff has no predecessor, so even
    # the down-then-up pattern only crosses on bar 3.
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3))
    closes = [10.0, 9.0, 8.0, 12.0]   # diff[2] = 8.5 - 9 < 0, diff[3] = 10 - 9.67 > 0
    assert directions(strategy, closes) == {3: LONG}


def test_sma_cross_when_cross_below_and_long_only_then_flat_after_long():
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3))
    closes = [10.0, 10.0, 10.0, 10.0, 11.0, 11.0, 9.0]
    assert directions(strategy, closes) == {4: LONG, 6: FLAT}


def test_sma_cross_when_cross_below_from_flat_and_long_only_then_no_change():
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3))
    assert directions(strategy, [10.0, 10.0, 10.0, 10.0, 9.0]) == {}


def test_sma_cross_when_cross_below_and_not_long_only_then_short_on_that_bar():
    strategy = SmaCross(SmaCrossParams(fast=2, slow=3, long_only=False))
    assert directions(strategy, [10.0, 10.0, 10.0, 10.0, 9.0]) == {4: SHORT}


def test_sma_cross_when_random_walk_then_signals_exactly_on_definition_crosses():
    seed = random.SystemRandom().randrange(2**32)
    print(f"sma_cross seed: {seed}")
    closes = 100.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, 3_000)))
    series = pd.Series(closes)
    diff = (series.rolling(5).mean() - series.rolling(20).mean()).to_numpy()
    expected, target = {}, FLAT
    for t in range(1, len(diff)):
        prev, now = diff[t - 1], diff[t]
        crossed = (LONG if prev <= 0 < now else SHORT if prev >= 0 > now else None)
        if crossed is not None and crossed != target:   # NaN compares False: warm-up skipped
            expected[t] = target = crossed
    strategy = SmaCross(SmaCrossParams(fast=5, slow=20, long_only=False))
    assert len(expected) > 10
    assert directions(strategy, closes) == expected


def test_sma_cross_when_crossing_then_confidence_scales_with_gap_and_clips_to_one():
    closes = [10.0, 10.0, 10.0, 10.0, 11.0]
    gap = (10.5 - 31.0 / 3) / (31.0 / 3)   # |fast - slow| / slow on bar 4, about 1.6%
    wide = targets(SmaCross(SmaCrossParams(fast=2, slow=3, full_confidence_gap=0.1)), closes)
    assert wide[4][1] == pytest.approx(gap / 0.1, rel=1e-9)
    narrow = targets(SmaCross(SmaCrossParams(fast=2, slow=3, full_confidence_gap=0.001)), closes)
    assert narrow[4][1] == 1.0


# --- momentum --------------------------------------------------------------------------

def test_momentum_when_return_above_threshold_then_long_with_scaled_confidence():
    strategy = Momentum(MomentumParams(lookback=2, threshold=0.02))
    result = targets(strategy, [100.0, 100.0, 103.0])
    assert list(result) == [2]
    assert result[2][0] == LONG
    assert result[2][1] == pytest.approx(0.03 / 0.04, rel=1e-9)


def test_momentum_when_return_inside_band_then_keeps_target_until_below_threshold():
    strategy = Momentum(MomentumParams(lookback=2, threshold=0.02))
    # bar 2: +3% LONG; bar 3: 101/100 = +1% (band); bar 4: 98/103 = -4.9% -> FLAT;
    # bar 5: 97/101 = -4% (already FLAT, no change).
    assert directions(strategy, [100.0, 100.0, 103.0, 101.0, 98.0, 97.0]) == {2: LONG, 4: FLAT}


def test_momentum_when_below_threshold_and_not_long_only_then_short():
    strategy = Momentum(MomentumParams(lookback=1, threshold=0.02, long_only=False))
    assert directions(strategy, [100.0, 97.0, 96.0, 100.0]) == {1: SHORT, 3: LONG}


def test_momentum_when_fewer_than_lookback_bars_then_nothing():
    strategy = Momentum(MomentumParams(lookback=3, threshold=0.01))
    assert directions(strategy, [100.0, 150.0, 200.0]) == {}


# --- mean_reversion --------------------------------------------------------------------

FLAT_THEN_DIP = [100.0] * 5 + [90.0, 100.0, 100.0]
DIP_Z = -8.0 / np.sqrt(20.0)   # window 5: [100, 100, 100, 100, 90]: mean 98, std sqrt(20)


def test_mean_reversion_when_z_below_entry_then_long_and_back_near_mean_then_flat():
    strategy = MeanReversion(MeanReversionParams(window=5, entry_z=1.5, exit_z=0.5))
    result = targets(strategy, FLAT_THEN_DIP)
    assert {t: d for t, (d, _) in result.items()} == {5: LONG, 6: FLAT}
    assert result[5][1] == pytest.approx(-DIP_Z / 3.0, rel=1e-9)
    # bar 6: [100, 100, 100, 90, 100] -> z = 2 / sqrt(20); exit confidence 1 - |z| / 1.5
    assert result[6][1] == pytest.approx(1.0 - (2.0 / np.sqrt(20.0)) / 1.5, rel=1e-9)


def test_mean_reversion_when_bollinger_then_long_on_the_bar_back_inside_the_band():
    strategy = MeanReversion(MeanReversionParams(window=5, entry_z=1.5, exit_z=0.1,
                                                 mode="bollinger"))
    # bar 5 closes below the lower band; bar 6 is back inside it (z > -exit too, but
    # an exit only applies to a position held before the bar).
    closes = [100.0] * 5 + [90.0, 97.0, 100.0]
    assert directions(strategy, closes) == {6: LONG, 7: FLAT}


def test_mean_reversion_when_stretch_above_and_not_long_only_then_short():
    strategy = MeanReversion(MeanReversionParams(window=5, entry_z=1.5, long_only=False))
    assert directions(strategy, [100.0] * 5 + [110.0, 100.0]) == {5: SHORT, 6: FLAT}


def test_mean_reversion_when_stretch_above_and_long_only_then_nothing():
    strategy = MeanReversion(MeanReversionParams(window=5, entry_z=1.5))
    assert directions(strategy, [100.0] * 5 + [110.0, 100.0]) == {}


def test_mean_reversion_when_long_and_jumps_past_upper_entry_then_flips_to_short():
    strategy = MeanReversion(MeanReversionParams(window=5, entry_z=1.5, long_only=False))
    assert directions(strategy, [100.0] * 5 + [90.0, 130.0]) == {5: LONG, 6: SHORT}


# --- params ----------------------------------------------------------------------------

def test_make_params_when_unknown_key_then_value_error_naming_the_key():
    with pytest.raises(ValueError, match="unknown parameter 'fsat'"):
        make_params(SmaCross, {"fsat": 5})


def test_make_params_when_wrong_type_then_value_error_naming_the_field():
    with pytest.raises(ValueError, match=r"\$\.lookback"):
        make_params(Momentum, {"lookback": "twenty"})


def test_make_params_when_fast_not_below_slow_then_value_error_naming_fast():
    with pytest.raises(ValueError, match="`fast` \\(30\\) must be less than `slow` \\(10\\)"):
        make_params(SmaCross, {"fast": 30, "slow": 10})


def test_make_params_when_mode_unknown_then_value_error_naming_mode():
    with pytest.raises(ValueError, match=r"\$\.mode"):
        make_params(MeanReversion, {"mode": "keltner"})


def test_make_params_when_empty_then_documented_defaults():
    params = make_params(SmaCross, {})
    assert (params.fast, params.slow, params.long_only) == (10, 30, True)
    assert make_params(Momentum, None) == MomentumParams(lookback=20, threshold=0.02)


def test_params_when_built_directly_with_unknown_field_then_rejected_too():
    with pytest.raises(msgspec.ValidationError, match="unknown field `windw`"):
        msgspec.convert({"windw": 3}, MeanReversionParams)


# --- registry --------------------------------------------------------------------------

def test_resolve_when_builtin_name_then_builtin_class():
    assert builtin_names() == ["mean_reversion", "momentum", "sma_cross"]
    assert resolve("sma_cross") is SmaCross
    assert resolve("mean_reversion") is MeanReversion


def test_resolve_when_unknown_name_then_value_error_listing_builtins():
    with pytest.raises(ValueError, match="unknown strategy 'sma_crosss'.*mean_reversion, "
                                         "momentum, sma_cross"):
        resolve("sma_crosss")


def test_resolve_when_dotted_module_path_then_that_class():
    assert resolve("strategies.momentum:Momentum") is Momentum


def test_resolve_when_module_lacks_class_then_value_error_naming_it():
    with pytest.raises(ValueError, match="no class 'Nope'"):
        resolve("strategies.momentum:Nope")


PLUGIN = '''
import msgspec

class BuyAfterParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bars: int = 3

class BuyAfter:
    """Goes LONG on the `bars`-th bar it sees."""
    name = "buy_after"
    Params = BuyAfterParams

    def __init__(self, params):
        self.left = params.bars

    def on_bar(self, bar):
        self.left -= 1
        return (1, 1.0) if self.left == 0 else None
'''


def test_resolve_when_file_path_then_loads_the_users_strategy(tmp_path):
    path = tmp_path / "my_strategy.py"
    path.write_text(textwrap.dedent(PLUGIN))
    cls = resolve(f"{path}:BuyAfter")
    assert cls.name == "buy_after"
    assert resolve(f"{path}:BuyAfter") is cls   # loaded once per file
    strategy = cls(make_params(cls, {"bars": 2}))
    assert directions(strategy, [1.0, 2.0, 3.0]) == {1: LONG}
    with pytest.raises(ValueError, match="unknown parameter 'bar'"):
        make_params(cls, {"bar": 2})


def test_resolve_when_file_missing_then_value_error_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such file .*absent.py"):
        resolve(f"{tmp_path / 'absent.py'}:X")


def test_resolve_when_file_fails_to_import_then_value_error_with_the_cause(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('half-written plugin')\n")
    with pytest.raises(ValueError, match="RuntimeError: half-written plugin"):
        resolve(f"{path}:X")


def test_resolve_when_class_lacks_strategy_shape_then_value_error_listing_gaps(tmp_path):
    path = tmp_path / "shapeless.py"
    path.write_text("class NotAStrategy:\n    pass\n")
    with pytest.raises(ValueError, match="`name`.*`Params`.*`on_bar"):
        resolve(f"{path}:NotAStrategy")
