"""How a course's test file checks the layer: no import of the checker, only its pytest fixture.

    pytest examples/student_layer
The test is marked xfail because of the planted mistake; fix student_layer.py and it passes
(strict: then remove the marker).
"""
import pytest
import torch

from student_layer import StudentLinear


@pytest.mark.xfail(strict=True, reason="planted mistake: the bias gradient is averaged over the batch")
def test_student_linear_matches_torch(check_gradients):
    check_gradients.layer(StudentLinear(3, 2), torch.nn.Linear(3, 2), input_shape=(8, 3))
