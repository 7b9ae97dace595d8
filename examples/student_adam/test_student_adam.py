"""How a course's test file checks the update rule: no import of the checker, only its pytest fixture.

    pytest examples/student_adam
The test is marked xfail because of the planted mistake; fix student_adam.py and it passes
(strict: then remove the marker).
"""
import pytest

from student_adam import adam_step


@pytest.mark.xfail(strict=True, reason="planted mistake: eps inside the square root")
def test_student_adam_matches_torch(check_gradients):
    check_gradients.optimizer(adam_step, "adam", steps=5, lr=0.01)
