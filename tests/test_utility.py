"""U(n), the utility of self-supervision (Newell & Deng 2020)."""
import numpy as np

from lib import utility


def test_utility_on_synthetic_curves():
  budgets = [100, 200, 400, 800]
  scratch = [0.20, 0.30, 0.40, 0.50]  # Linear in log2(n): 0.1 per doubling.
  # SSL at 100 = scratch at 200 (U = 1); at 200 = scratch at ~283 (half a
  # doubling: U = sqrt(2) - 1); at 400 beyond anything scratch reached (inf);
  # at 800 below scratch at 800: U < 0 (n' = 400).
  ssl = [0.30, 0.35, 0.55, 0.40]
  u = utility.utility(budgets, scratch, ssl)
  np.testing.assert_allclose(u[:2], [1.0, np.sqrt(2) - 1], rtol=1e-9)
  assert u[2] == np.inf
  np.testing.assert_allclose(u[3], 400 / 800 - 1, rtol=1e-9)
  # Outside the budgets, the text gives the bound: n' > 800 at n = 400.
  assert utility.describe(u[2], 400, budgets) == "inf (n' > 800: U > 1.000)"
  assert utility.describe(u[1], 200, budgets) == "0.414"
  assert utility.describe(np.nan, 200, budgets) == (
      "nan (n' < 100: U < -0.500)")
  # Equal curves: no gain anywhere.
  np.testing.assert_allclose(utility.utility(budgets, scratch, scratch),
                             0.0, atol=1e-12)
