"""One written, operational test per claim: what is measured, on which loss, the unit, the
test, the decision rule and the grid it needs (pure data).

Written once here and rendered everywhere a verdict is shown: the report's Method
section and claims list (HTML and report.md), ``claims.json``, the ``claim_results``
table behind the ``claims`` view, and the Prefect artifact. seqlab.report.claims
implements exactly these rules; tests/report/test_claims.py checks each against a
simulated grid whose truth is known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from seqlab.report.stats import ALPHA, EQUIVALENCE_RATIO, MIN_CONFIGS

MIN_DYNAMICS_EPOCHS = 100  # claims 4 and 5: shorter runs have not levelled off
CLAIM_DEPTH = 4  # claim 3 speaks of deep stacks: the reference study's depth 4
MIN_TEST_DAYS = 30
DIVERGED_WOBBLE_FACTOR = 2.0  # a diverged run's wobble: twice the grid's largest finite one

CONFIG_UNIT = ("a matched pair of configs (equal in every factor but the one compared): the "
               "mean over their common seeds of log(a/b)")
CONFIG_TEST = ("two-sided Student t over configs, Holm-adjusted, and the exact sign-flip "
               f"permutation test, which must also reject at {ALPHA:g}")
TOST = ("two one-sided tests (TOST) of |log ratio| < log 1.25 by t, Holm-adjusted, and by the "
        f"exact sign-flip test, which must also reject at {ALPHA:g}")
SPEED_RULE = (f"needs runs of at least {MIN_DYNAMICS_EPOCHS} epochs, the norms compared and "
              f"{MIN_CONFIGS} matched configs per comparison")


@dataclass(frozen=True)
class ClaimTest:
    number: int
    short_name: str
    statement: str
    measured: str
    loss: str
    unit: str
    test: str
    decision: str
    minimum_grid: str

    def one_line(self) -> str:
        return (f"{self.number}. {self.short_name}: {self.measured} ({self.loss}); unit: "
                f"{self.unit}; test: {self.test}; decision: {self.decision}; needs: "
                f"{self.minimum_grid}")

    def record(self) -> dict:
        return asdict(self)


_IUT = (f"supported when every deciding part points the claimed way and the claim's p (the "
        f"largest of its parts', an intersection-union test) is below {ALPHA:g} after Holm "
        f"across the claims; contradicted when a part points the other way with p x parts "
        f"below {ALPHA:g} after Holm")

CLAIM_TESTS: dict[int, ClaimTest] = {t.number: t for t in (
    ClaimTest(1, "close beats all", "Close-only features reach a lower test loss than all "
              "features.",
              "close/all ratio of the test loss at the epoch chosen on validation",
              "test loss", CONFIG_UNIT, CONFIG_TEST, "ratio < 1; " + _IUT,
              f"both feature sets and {MIN_CONFIGS} matched configs"),
    ClaimTest(2, "close advantage shrinks with depth", "The close-only advantage shrinks as "
              "depth grows.",
              "premise: claim 1's ratio < 1; then per (cell, norm) the least-squares slope over "
              "depth of the seed-mean log(all/close)", "test loss",
              "a (cell, norm) slope", CONFIG_TEST,
              "premise ratio < 1 and slope < 0 (the all/close ratio falls towards 1); " + _IUT,
              f"both feature sets at two or more depths and {MIN_CONFIGS} (cell, norm) slopes"),
    ClaimTest(3, "cells alike when deep", "With deep stacks, RNN, LSTM and GRU perform alike.",
              f"each pair of cells' ratio of test loss at the selected epoch, at depth "
              f"{CLAIM_DEPTH}", "test loss", CONFIG_UNIT, TOST,
              f"all three pairs within x{EQUIVALENCE_RATIO:g} either way; " + _IUT,
              f"rnn, lstm and gru at depth {CLAIM_DEPTH} (else 'not tested') and "
              f"{MIN_CONFIGS} matched configs per pair"),
    ClaimTest(4, "BatchNorm fast early, noisy late", "BatchNorm learns faster in early epochs "
              "but fluctuates more late in training than no norm and LayerNorm.",
              "epochs to close 50% of each run's own log-loss gap (speed), and the late "
              "log-loss wobble (diverged runs = least stable)",
              "train loss decides speed, test loss decides wobble; the other shown",
              CONFIG_UNIT, CONFIG_TEST,
              "batch/none and batch/layer epochs < 1 and wobble > 1; " + _IUT, SPEED_RULE),
    ClaimTest(5, "LayerNorm fast and stable", "LayerNorm converges faster and more stably than "
              "no norm and BatchNorm.",
              "epochs to close 90% of each run's own log-loss gap (convergence), and the late "
              "log-loss wobble (diverged runs = least stable)",
              "train loss decides speed, test loss decides wobble; the other shown",
              CONFIG_UNIT, CONFIG_TEST,
              "layer/none and layer/batch epochs < 1 and wobble < 1; " + _IUT, SPEED_RULE),
    ClaimTest(6, "models beat persistence", "The models beat the naive persistence baseline "
              "(tomorrow = today).",
              "the RMSE ratio to persistence (tomorrow = today) of the one run with the lowest "
              "validation loss; each cell's best shown, not deciding",
              "test-period forecasts in USD", "a test day",
              "Diebold-Mariano on squared errors (Harvey-Leybourne-Newbold, Newey-West "
              "variance); its interval inverts the same statistic",
              "ratio < 1; " + _IUT, f"a validation split and {MIN_TEST_DAYS} test days"),
)}

SHORT_NAMES = {n: t.short_name for n, t in CLAIM_TESTS.items()}
STATEMENTS = {n: t.statement for n, t in CLAIM_TESTS.items()}


def operational_lines() -> list[str]:
    return [t.one_line() for t in CLAIM_TESTS.values()]
