"""Check the student's Adam against torch.optim.Adam and print the report.

    python examples/student_adam/check_student_adam.py      # exit 1: the planted mistake
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from student_adam import adam_step  # noqa: E402

from backprop_oracle import check_optimizer  # noqa: E402

if __name__ == "__main__":
    # lr, betas and eps reach adam_step as the keyword arguments it declares; 5 steps on random
    # gradients, then 5 on a small network's gradients, the same gradients given to both.
    result = check_optimizer(adam_step, "adam", steps=5, lr=0.01)
    print(result.report())
    sys.exit(0 if result.passed else 1)
