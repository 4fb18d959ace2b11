import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared: torch's spinning worker threads make tiny convolutions 50x slower there.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
