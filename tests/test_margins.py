import math

import pytest

torch = pytest.importorskip("torch")

from training.margins import PRESETS, Margin, MarginHead, margin_logits, margin_preset, target_logit  # noqa: E402


def slow_target(cos: float, m: Margin) -> float:
    """Per-sample reference of the monotonic margin formula, in plain Python."""
    c = min(max(cos, -1 + 1e-7), 1 - 1e-7)
    if m.m1 == 1.0 and m.m2 == 0.0:
        return cos - m.m3
    theta = math.acos(c)
    arg = m.m1 * theta + m.m2
    k = math.floor(arg / math.pi)
    return (-1) ** k * math.cos(arg) - 2 * k - m.m3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(PRESETS))
def test_vectorised_logits_match_a_slow_loop(dtype, name):
    m = margin_preset(name, s=30.0)
    g = torch.Generator().manual_seed(0)
    cos = (torch.rand(16, 7, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    cos[0, :] = 1.0
    cos[1, :] = -1.0
    labels = torch.randint(0, 7, (16,), generator=g)
    fast = margin_logits(cos, labels, m)
    for i in range(16):
        for j in range(7):
            want = m.s * (slow_target(float(cos[i, j]), m) if j == labels[i] else float(cos[i, j]))
            assert float(fast[i, j]) == pytest.approx(want, abs=1e-2 if dtype == torch.float32 else 1e-9)


def test_presets_reduce_to_textbook_formulas():
    theta = torch.linspace(0.05, 2.4, 50, dtype=torch.float64)
    cos = torch.cos(theta)
    torch.testing.assert_close(target_logit(cos, margin_preset("arcface")), torch.cos(theta + 0.5))
    torch.testing.assert_close(target_logit(cos, margin_preset("cosface")), cos - 0.35)
    torch.testing.assert_close(target_logit(cos, margin_preset("combined")), torch.cos(theta + 0.3) - 0.2)
    t = theta[theta * 1.7 < math.pi]
    torch.testing.assert_close(target_logit(torch.cos(t), margin_preset("sphereface")), torch.cos(1.7 * t))
    torch.testing.assert_close(target_logit(cos, margin_preset("softmax")), cos)


@pytest.mark.parametrize("name", list(PRESETS))
def test_target_logit_decreases_monotonically_over_the_whole_range(name):
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    psi = target_logit(torch.cos(theta), margin_preset(name))
    assert torch.all(psi[1:] <= psi[:-1] + 1e-9)
    assert torch.all(psi <= torch.cos(theta) + 1e-9)  # a margin never helps the target


@pytest.mark.parametrize("name", list(PRESETS))
def test_gradients_are_finite_at_the_edges(name):
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    head = MarginHead(2, 2, margin_preset(name, s=16))
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    loss = head(emb, torch.tensor([0, 0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("kwargs", [dict(s=0), dict(s=-1), dict(m1=0.5), dict(m2=-0.1), dict(m2=4.0), dict(m3=-0.2)])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        Margin(**kwargs)
    with pytest.raises(ValueError):
        margin_preset("nonsense")


def test_margin_warmup_grows_from_zero():
    head = MarginHead(4, 3, margin_preset("combined"), warmup_steps=10)
    assert head.current_margin() == Margin(1.0, 0.0, 0.0, 64.0)
    for _ in range(5):
        head.step()
    m = head.current_margin()
    assert m.m2 == pytest.approx(0.15) and m.m3 == pytest.approx(0.1)
    for _ in range(10):
        head.step()
    assert head.current_margin() == margin_preset("combined")


def slow_loss(emb: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, m: Margin) -> torch.Tensor:
    """Per-sample, per-class reference of the head's loss, written out element by element.

    It shares no code with the head: dot products one pair at a time, the margin branch
    chosen in Python, and cross-entropy as logsumexp minus the target logit.
    """
    losses = []
    for i in range(emb.shape[0]):
        e = emb[i] / torch.sqrt((emb[i] * emb[i]).sum())
        row = []
        for j in range(weight.shape[0]):
            w = weight[j] / torch.sqrt((weight[j] * weight[j]).sum())
            c = (e * w).sum()
            if j == int(labels[i]):
                if m.m1 == 1.0 and m.m2 == 0.0:
                    c = c - m.m3
                else:
                    theta = torch.acos(c.clamp(-1 + 1e-7, 1 - 1e-7))
                    arg = m.m1 * theta + m.m2
                    k = math.floor(float(arg.detach()) / math.pi)
                    c = (-1) ** k * torch.cos(arg) - 2 * k - m.m3
            row.append(m.s * c)
        logits = torch.stack(row)
        losses.append(torch.logsumexp(logits, 0) - logits[int(labels[i])])
    return torch.stack(losses).mean()


def random_margins() -> list[Margin]:
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(6):
        m1, m2, m3, s = (1.0 + torch.rand(1, generator=g).item(), 0.8 * torch.rand(1, generator=g).item(),
                         0.5 * torch.rand(1, generator=g).item(), 4.0 + 28.0 * torch.rand(1, generator=g).item())
        out.append(Margin(m1, m2, m3, s))
    out.append(Margin(1.0, 0.0, 0.3 * torch.rand(1, generator=g).item(), 16.0))  # the acos-free branch
    return out


CASES = [pytest.param(margin_preset(n, s=16.0), id=n) for n in PRESETS] + [
    pytest.param(m, id=f"m1={m.m1:.2f},m2={m.m2:.2f},m3={m.m3:.2f}") for m in random_margins()
]


@pytest.mark.parametrize("margin", CASES)
def test_head_loss_and_gradients_match_the_slow_loop(margin):
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (12,), generator=g)
    head = MarginHead(4, 5, margin).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(5, 4, generator=g, dtype=torch.float64))
    fast = head(emb, labels)
    slow = slow_loss(emb, head.weight, labels, margin)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    gf = torch.autograd.grad(fast, [emb, head.weight])
    gs = torch.autograd.grad(slow, [emb, head.weight])
    for a, b in zip(gf, gs):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("margin", CASES)
def test_head_gradients_pass_gradcheck(margin):
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (6,), generator=g)
    head = MarginHead(3, 4, margin).double()

    def loss(e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(head, {"weight": w}, (e, labels))

    assert torch.autograd.gradcheck(loss, (emb, weight), eps=1e-6, atol=1e-5)


def test_random_margins_reach_the_monotonic_continuation():
    """The random cases above must exercise k >= 1, where plain cos(m1*theta + m2) would turn round."""
    theta = torch.linspace(0, math.pi, 200, dtype=torch.float64)
    assert any(bool(((m.m1 * theta + m.m2) > math.pi).any()) for m in random_margins() if m.m1 > 1)


def test_warmup_never_reads_a_device_tensor(monkeypatch):
    """The warm-up count stays on the host: no ``.item()`` (a GPU sync) per step."""
    head = MarginHead(4, 3, margin_preset("arcface", s=8), warmup_steps=4)
    emb, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])

    def forbidden(*_a, **_k):
        raise AssertionError("a tensor was read back to the host")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    monkeypatch.setattr(torch.Tensor, "__float__", forbidden)
    monkeypatch.setattr(torch.Tensor, "__int__", forbidden)
    for _ in range(3):
        head(emb, y)
        head.step()
        head.current_margin()
    monkeypatch.undo()
    assert head.steps == 3


def test_warmup_count_survives_a_checkpoint():
    head = MarginHead(4, 3, margin_preset("combined"), warmup_steps=10)
    for _ in range(7):
        head.step()
    other = MarginHead(4, 3, margin_preset("combined"), warmup_steps=10)
    other.load_state_dict(head.state_dict())
    assert other.steps == 7 and other.current_margin() == head.current_margin()
