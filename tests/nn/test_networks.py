"""elbokit.nn.networks: shapes through leading sample axes, head splitting, and the
linear decoder's data-driven start (FA's, as its docstring promises)."""

import pytest

torch = pytest.importorskip("torch")

from elbokit.nn.likelihoods import Bernoulli, Gaussian  # noqa: E402
from elbokit.nn.networks import (ConvDecoder, ConvEncoder, LinearDecoder, MLPDecoder,  # noqa: E402
                                 MLPEncoder, mlp)


def test_mlp_puts_relu_between_layers_only():
    net = mlp([5, 7, 3])
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    assert len(mlp([5, 3])) == 1  # no hidden layer: one linear map
    x = torch.randn(4, 5)
    linear = mlp([5, 3])[0]
    torch.testing.assert_close(linear(x), x @ linear.weight.T + linear.bias)


@pytest.mark.parametrize("make_encoder, make_decoder, d", [
    (lambda: MLPEncoder(64, (16,), 3), lambda h: MLPDecoder(3, (16,), 64, h), 64),
    (lambda: ConvEncoder((8, 8), 3, channels=(4, 6)),
     lambda h: ConvDecoder((8, 8), 3, h, channels=(4, 6)), 64),
    (lambda: MLPEncoder(10, (), 3), lambda h: LinearDecoder(3, 10, h), 10),
])
@pytest.mark.parametrize("n_heads", [1, 2])
def test_shapes_and_leading_sample_axes(make_encoder, make_decoder, d, n_heads):
    torch.manual_seed(0)
    encoder, decoder = make_encoder(), make_decoder(n_heads)
    x = torch.rand(5, d)
    mean, logvar = encoder(x)
    assert mean.shape == logvar.shape == (5, 3)
    z = torch.randn(4, 5, 3)  # (S, B, L)
    heads = decoder(z)
    assert len(heads) == n_heads and all(h.shape == (4, 5, d) for h in heads)
    # the sample axis passes through: decoding each sample alone gives the same maps
    for s in range(4):
        for head, alone in zip(heads, decoder(z[s])):
            torch.testing.assert_close(head[s], alone)


def test_linear_decoder_starts_at_the_data_moments():
    torch.manual_seed(1)
    X = torch.rand(200, 6) * torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 0.01])
    gaussian = Gaussian(min_variance=1e-3)
    decoder = LinearDecoder(2, 6, n_heads=2)
    weight_before = decoder.linear.weight.clone()
    decoder.init_from_data(X, gaussian)
    torch.testing.assert_close(decoder.linear.bias, X.mean(0))
    torch.testing.assert_close(decoder.linear.weight, 0.01 * weight_before)
    variance = gaussian.variance(decoder.raw_variance)
    expected = torch.maximum(X.var(0), torch.tensor(1.01e-3))  # floor + 1e-2 floor at least
    torch.testing.assert_close(variance, expected, rtol=1e-5, atol=1e-7)
    # Bernoulli: the bias is the logit of the pixel means (clamped away from 0 and 1)
    pixels = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    bernoulli = LinearDecoder(2, 3, n_heads=1)
    bernoulli.init_from_data(pixels, Bernoulli())
    p = torch.sigmoid(bernoulli.linear.bias)
    torch.testing.assert_close(p, torch.tensor([1e-3, 0.5, 1 - 1e-3]))


def _each_by_copies(forward, x, codes):
    """forward of every row of x with each code after it, by copying the rows."""
    return forward(torch.cat([x.repeat(len(codes), 1),
                              codes.repeat_interleave(x.shape[0], 0)], -1))


@pytest.mark.parametrize("make_encoder, d", [
    (lambda: MLPEncoder(64 + 4, (16,), 3), 64),
    (lambda: MLPEncoder(64 + 4, (16, 8), 3, activation="gated"), 64),
    (lambda: MLPEncoder(10 + 4, (), 3), 10),  # a linear encoder
    (lambda: ConvEncoder((8, 8), 3, channels=(4, 6), n_condition=4), 64),
])
def test_forward_each_is_forward_of_every_row_with_every_code(make_encoder, d):
    """M2's enumeration of the classes: the x part of the first layer computed once gives
    the values and the weight gradients of the rows copied K times."""
    torch.manual_seed(0)
    encoder = make_encoder()
    x, codes = torch.rand(5, d), torch.eye(4)
    got = encoder.forward_each(x, codes)
    want = _each_by_copies(encoder, x, codes)
    for a, b in zip(got, want):
        assert a.shape == (20, 3)
        torch.testing.assert_close(a, b)
    weights = torch.randn(20, 3)
    grads = []
    for out in (got, want):
        encoder.zero_grad()
        ((out[0] + out[1].exp()) * weights).sum().backward(retain_graph=True)
        grads.append([p.grad.clone() for p in encoder.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_network_encodes_each_class_as_the_copied_rows(posterior):
    """VAENetwork.encode_posterior_each: the preset's shortcut and the copies of an
    encoder without forward_each give encode_posterior of the copied rows (the IAF's
    context too)."""
    from elbokit.nn.config import ArchitectureConfig
    from elbokit.nn.model import VAENetwork

    torch.manual_seed(0)
    config = ArchitectureConfig(n_features=12, latent_dim=3, hidden=(8,), conditional=True,
                                condition_dim=4, classes=(0, 1, 2, 3), posterior=posterior,
                                flow_context=6, flow_hidden=(8,), standardize=True,
                                likelihood="gaussian")
    net = VAENetwork(config)
    net.set_standardization(torch.rand(12), torch.rand(12) + 0.5)
    x, codes = torch.randn(5, 12), torch.eye(4)
    want = _each_by_copies(net.encode_posterior, x, codes)
    torch.testing.assert_close(net.encode_posterior_each(x, codes), want)

    class Plain(torch.nn.Module):  # a custom encoder: no forward_each
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)
    net.encoder = Plain(net.encoder)
    torch.testing.assert_close(net.encode_posterior_each(x, codes), want)
