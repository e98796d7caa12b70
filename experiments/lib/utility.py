"""Utility of self-supervision (Newell & Deng, CVPR 2020).

With a(n) the test accuracy trained from scratch on n labels and a_ft(n) the
accuracy with self-supervision, n' is the label count at which from-scratch
training matches a_ft(n); U(n) = n'/n - 1. 0 means no gain, 1 means
self-supervision is worth as much as doubling the labels, and U is infinite
when from scratch never gets there on the budgets measured.
"""
import numpy as np


def matching_budget(budgets, scratch, accuracy: float) -> float:
  """n' with a(n') = accuracy, interpolating a linearly in log(n).

  The from-scratch curve is made monotone (running maximum) first. Beyond
  its largest accuracy: inf; below its smallest: NaN (not measured).
  """
  log_n = np.log(np.asarray(budgets, np.float64))
  a = np.maximum.accumulate(np.asarray(scratch, np.float64))
  if accuracy > a[-1]:
    return np.inf
  if accuracy < a[0]:
    return np.nan
  i = int(np.argmax(a >= accuracy))  # First budget reaching `accuracy`.
  if i == 0 or a[i] == a[i - 1]:
    return float(np.exp(log_n[i]))
  t = (accuracy - a[i - 1]) / (a[i] - a[i - 1])
  return float(np.exp(log_n[i - 1] + t * (log_n[i] - log_n[i - 1])))


def utility(budgets, scratch, self_supervised) -> list[float]:
  """U(n) for each budget n, from the two accuracy curves on `budgets`."""
  return [matching_budget(budgets, scratch, acc) / n - 1
          for n, acc in zip(budgets, self_supervised)]


def describe(u: float, n: int, budgets) -> str:
  """U(n) as text; where n' is outside the budgets, the bound that implies."""
  if np.isinf(u):
    return f"inf (n' > {budgets[-1]}: U > {budgets[-1] / n - 1:.3f})"
  if np.isnan(u):
    return f"nan (n' < {budgets[0]}: U < {budgets[0] / n - 1:.3f})"
  return f"{u:.3f}"
