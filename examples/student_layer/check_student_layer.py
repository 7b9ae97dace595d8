"""Check the student's layer against torch.nn.Linear and print the report.

    python examples/student_layer/check_student_layer.py      # exit 1: the planted mistake
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from student_layer import StudentLinear  # noqa: E402

from backprop_oracle import check_layer  # noqa: E402

if __name__ == "__main__":
    # The student's weights are copied into torch's Linear; every trial draws new ones, and a batch of 8.
    result = check_layer(StudentLinear(3, 2), torch.nn.Linear(3, 2), input_shape=(8, 3))
    print(result.report())
    sys.exit(0 if result.passed else 1)
