"""Model factories a user might write (`train.model: user_models:<name>`), for tests: called as
factory(n_inputs, n_outputs, trial_settings) -> nn.Module, once per trial of a pack."""
from torch import nn


def two_layer(n_in, n_out, cfg):
    """A plain MLP: torch.func packs K of these into one vectorised model."""
    return nn.Sequential(nn.Linear(n_in, 32), nn.GELU(), nn.Linear(32, n_out))
