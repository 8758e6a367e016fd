"""PCA of states against scikit-learn, on rows and on masked trajectories."""

import pytest
import torch
from sklearn import decomposition

from mnemonet.analysis.pca import PCA

D64 = torch.float64


def _data(n=60, s=5):
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1], dtype=D64)[:s]
    return torch.randn(n, s, generator=g, dtype=D64) * scales + torch.arange(s, dtype=D64)


def test_matches_scikit_learn_up_to_sign():
    x = _data()
    ours = PCA(3).fit(x)
    ref = decomposition.PCA(3).fit(x.numpy())
    comps = torch.from_numpy(ref.components_)
    signs = torch.sign((ours.components * comps).sum(1))
    torch.testing.assert_close(ours.components, comps * signs[:, None])
    torch.testing.assert_close(ours.explained_variance, torch.from_numpy(ref.explained_variance_))
    torch.testing.assert_close(ours.explained_variance_ratio, torch.from_numpy(ref.explained_variance_ratio_))
    torch.testing.assert_close(ours.transform(x), torch.from_numpy(ref.transform(x.numpy())) * signs)


def test_sign_convention_and_round_trip():
    x = _data()
    pca = PCA(5).fit(x)
    biggest = pca.components.abs().argmax(1)
    assert bool((pca.components[torch.arange(5), biggest] > 0).all())
    torch.testing.assert_close(pca.inverse_transform(pca.transform(x)), x)
    # a refit on the same rows gives the same picture
    torch.testing.assert_close(PCA(5).fit(x).transform(x), pca.transform(x))


def test_trajectories_with_a_mask_fit_like_their_selected_rows():
    traj = _data(48).reshape(6, 8, 5)  # (B, T, S)
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[:, 2:6] = True
    a = PCA(2).fit(traj, mask)
    b = PCA(2).fit(traj[:, 2:6].reshape(-1, 5))
    torch.testing.assert_close(a.components, b.components)
    z = a.transform(traj.float())
    assert z.shape == (6, 8, 2) and z.dtype == torch.float32


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).transform(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="n_components"):
        PCA(5).fit(torch.randn(3, 4))
    with pytest.raises(ValueError, match="n_components"):
        PCA(0)
    with pytest.raises(ValueError, match="states"):
        PCA(2).fit(torch.randn(4))
    with pytest.raises(ValueError, match="mask"):
        PCA(2).fit(torch.randn(2, 3, 4), torch.ones(3, 2, dtype=torch.bool))
    pca = PCA(2).fit(torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"states: expected a floating tensor of shape \(\.\.\., 4\)"):
        pca.transform(torch.randn(10, 3))
