"""Speed of BodyModel against smplx and body-models, and of VPoser; writes docs/PERFORMANCE.md.

    PYTHONPATH=. python benchmarks/bench_body_model.py [--out docs/PERFORMANCE.md] [--threads 2]

For each model file (an official-layout synthetic SMPL-X: 10475 vertices, dense pose correctives,
400 shape columns, written to a temporary folder; and the shipped open SMPL-X when it exists):
forward and forward + backward at batch 1, 64, 256, 1024, float32, on the CPU and, when there is one,
on CUDA. Four contenders run alternately in one process, so that load from other processes hits
them alike: BodyModel (fast path), BodyModel's plain dense path (lbs.py's reference, the one
BodyModel itself takes at batches up to 4), smplx (use_pca=False, flat_hand_mean=True; it also
computes 51 face landmarks and extra joints, which is part of its forward) and body-models
(SMPLX.forward_vertices, flat_hand_mean=True, its torch backend). Each number is the median of several
timed repetitions after warm-up. smplx and body-models are imported here only, never by the package.
BodyModel is frozen (requires_grad_(False)), as a fitter that optimises its own tensors may freeze it.

Body-only calls (files with pose correctives, batch 1 and 256): root orientation, body pose, betas and
translation only, the rest at rest, as a fitter of the body alone calls the model. BodyModel leaves
the parts not given at its stored zeros, so it knows they do not move and skips their correctives;
smplx and body-models are given explicit zeros. --no-body-only leaves these out.

CPU timings are taken twice: with one thread, as the CPU time of the calling thread (time.thread_time),
which other processes on a shared machine disturb far less than wall time; and with --threads threads
(default 2) as wall time, which is what a user sees on a quiet machine. On CUDA the wall time runs
between torch.cuda.synchronize calls.

Bounds: each call is also set against the shortest time this machine could do it in, measured in the
same run with the same threads and clock: its FLOPs (the products of shape and pose correctives, the
skinning blend and apply; 2 FLOPs per multiply-add; forward + backward counts each product twice) at the
rate of a float32 (31425 x 486) x (486 x 256) matmul, or the bytes it must move (blend shapes and
correctives read once per pass, the mesh written once) at the rate of streaming a (31425 x 486) matrix
through a matrix-vector product repeated back to back (as fast as the caches allow), whichever takes
longer. *ours / bound* is the time over that bound; 1 would be a call that does nothing but its
arithmetic (large batches) or its reading (batch 1).

Peak memory at batch 1024: on the CPU, each contender runs once in a fresh subprocess; the number
is the peak resident set size during the call (VmHWM, reset through /proc/self/clear_refs just
before it) minus the resident size before it. tracemalloc does not see torch's allocations. On CUDA
it is torch.cuda.max_memory_allocated during the call minus the memory allocated before it.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from human_body_prior.body_model.body_model import BodyModel  # noqa: E402
from human_body_prior.body_model.synthetic import write_synthetic_model  # noqa: E402
from human_body_prior.files.atomic_io import atomic_write  # noqa: E402

BATCHES = (1, 64, 256, 1024)
BODY_ONLY_BATCHES = (1, 256)  # the body-only calls, on the official-layout file only
BODY_JOINTS = 21  # the joints below the root that BODY_ONLY inputs pose
CONTENDERS = ("ours", "plain", "smplx", "body_models")
PEERS = ("smplx", "body_models")  # the other libraries, each with an "ours / peer" column


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "not installed"


LABELS = {"ours": "BodyModel", "plain": "plain dense path", "smplx": f"smplx {_version('smplx')}",
          "body_models": f"body-models {_version('body-models')}", "compiled": "torch.compile(BodyModel)"}
NUM_BETAS, NUM_EXPRESSIONS = 10, 10


# ----------------------------------------------------------------------------------------- inputs
BODY_ONLY = ("root_orient", "pose_body", "betas", "trans")


def random_inputs(batch, device, seed=0, requires_grad=False, body_only=False):
    """Pose parts (rad), betas, expression and translation (m) of `batch` bodies; float32. body_only:
    only the BODY_ONLY inputs (hands, jaw, eyes and expression at rest: BodyModel's stored zeros, the
    peers' explicit zeros)."""
    g = torch.Generator().manual_seed(seed)

    def r(width, scale):
        t = (torch.randn(batch, width, generator=g) * scale).to(device)
        return t.requires_grad_(requires_grad)

    x = dict(root_orient=r(3, 0.5), pose_body=r(63, 0.3), pose_hand=r(90, 0.3), pose_jaw=r(3, 0.1),
             pose_eye=r(6, 0.1), betas=r(NUM_BETAS, 1.0), expression=r(NUM_EXPRESSIONS, 1.0),
             trans=r(3, 0.5))
    return {k: x[k] for k in BODY_ONLY} if body_only else x


def _at_rest(x, name, width):
    """x[name], or zeros (B, width) when the call leaves that part at rest."""
    return x[name] if name in x else x["pose_body"].new_zeros(x["pose_body"].shape[0], width)


def load_contenders(path, device, compile_model=False):
    """{'ours': callable(inputs) -> vertices, ...}; smplx is left out, with a note, if it cannot load the file.
    compile_model adds 'compiled', torch.compile of a second BodyModel (compiled on first use per batch)."""
    # frozen, as a fitter that optimises its own tensors may freeze it: parts not given are then known to be at rest
    bm = BodyModel(path, num_betas=NUM_BETAS, num_expressions=NUM_EXPRESSIONS).to(device).requires_grad_(False)
    calls = {"ours": lambda x: bm(**x).v, "plain": lambda x: plain_dense_forward(bm, x)}
    if compile_model:
        compiled = torch.compile(BodyModel(path, num_betas=NUM_BETAS, num_expressions=NUM_EXPRESSIONS).to(device))
        calls["compiled"] = lambda x: compiled(**x).v
    notes = []
    try:
        import smplx
        ref = smplx.SMPLX(str(path), ext="npz", num_betas=NUM_BETAS, num_expression_coeffs=NUM_EXPRESSIONS,
                          use_pca=False, flat_hand_mean=True, use_face_contour=False).to(device)
        calls["smplx"] = lambda x: smplx_forward(ref, x)
    except Exception as exc:  # the comparison is optional; the table says why it is missing
        notes.append(f"smplx could not load this file ({type(exc).__name__}: {exc})")
    try:
        from body_models.smplx.torch import SMPLX as PeerSMPLX
        peer = PeerSMPLX(model_path=str(path), flat_hand_mean=True).to(device)
        calls["body_models"] = lambda x: body_models_forward(peer, x)
    except Exception as exc:
        notes.append(f"body-models could not load this file ({type(exc).__name__}: {exc})")
    return bm, calls, "; ".join(notes)


def plain_dense_forward(bm, x):
    """BodyModel's forward through lbs.py's plain dense path (no sparse skinning, batch-major mesh)."""
    bm.sparse_skinning = False
    try:
        return bm(**x).v
    finally:
        bm.sparse_skinning = True


def smplx_forward(ref, x):
    hand, eye = _at_rest(x, "pose_hand", 90), _at_rest(x, "pose_eye", 6)
    return ref(global_orient=x["root_orient"], body_pose=x["pose_body"], left_hand_pose=hand[:, :45],
               right_hand_pose=hand[:, 45:], jaw_pose=_at_rest(x, "pose_jaw", 3), leye_pose=eye[:, :3],
               reye_pose=eye[:, 3:], betas=x["betas"], expression=_at_rest(x, "expression", NUM_EXPRESSIONS),
               transl=x["trans"]).vertices


def body_models_forward(peer, x):
    B = x["pose_body"].shape[0]
    head = torch.cat([_at_rest(x, "pose_jaw", 3), _at_rest(x, "pose_eye", 6)], 1).view(B, 3, 3)
    return peer.forward_vertices(x["pose_body"].view(B, 21, 3), head, _at_rest(x, "pose_hand", 90).view(B, 30, 3),
                                 pelvis_rotation=x["root_orient"], shape=x["betas"],
                                 expression=_at_rest(x, "expression", NUM_EXPRESSIONS), global_translation=x["trans"])


def forward_only(call, x):
    with torch.no_grad():
        call(x)


def forward_backward(call, x):
    for t in x.values():
        t.grad = None
    call(x).sum().backward()


# ----------------------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alternating(fns: dict, device, reps: int, warmup: int = 2, clock=time.perf_counter) -> dict:
    """Run each fn once per round, in turn, for warmup + reps rounds -> {name: [seconds, ...]}.
    clock: time.perf_counter (wall) or, on the CPU with one thread, time.thread_time."""
    times = {name: [] for name in fns}
    for r in range(warmup + reps):
        for name, fn in fns.items():
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            if r >= warmup:
                times[name].append(clock() - start)
    return times


def reps_for(batch, quick):
    reps = {1: 30, 64: 10, 256: 6, 1024: 3}.get(batch, 3)
    return max(2, reps // 3) if quick else reps


def spread(ts):
    """Half the interquartile range relative to the median, in percent: the noise of a cell."""
    if len(ts) < 4:
        return 100 * (max(ts) - min(ts)) / 2 / statistics.median(ts)
    q = statistics.quantiles(ts, n=4)
    return 100 * (q[2] - q[0]) / 2 / statistics.median(ts)


def bench_body_model(path, device, batches, quick, clock=time.perf_counter, compile_model=False, body_only=False,
                     rates=None):
    """Time every contender at each batch (forward; forward + backward) -> rows and this run's rates.
    body_only: the BODY_ONLY inputs alone; rates: reuse a run's measured rates."""
    bm, calls, note = load_contenders(path, device, compile_model)
    rates = rates or host_rates(device, clock)
    rows = []
    for batch in batches:
        x = random_inputs(batch, device, seed=batch, body_only=body_only)
        if "compiled" in calls:  # compile outside the timings (forward, then forward + backward)
            start = time.perf_counter()
            forward_only(calls["compiled"], x)
            forward_backward(calls["compiled"], random_inputs(batch, device, seed=batch, requires_grad=True))
            print(f"  torch.compile at batch {batch}: {time.perf_counter() - start:.0f} s", flush=True)
        with torch.no_grad():
            outs = {name: call(x) for name, call in calls.items()}
        diff = {name: float((outs["ours"] - v).abs().max()) for name, v in outs.items() if name != "ours"}
        del outs
        xg = random_inputs(batch, device, seed=batch, requires_grad=True, body_only=body_only)
        reps = reps_for(batch, quick)
        fwd = time_alternating({n: (lambda c=c: forward_only(c, x)) for n, c in calls.items()}, device, reps,
                               clock=clock)
        fb = time_alternating({n: (lambda c=c: forward_backward(c, xg)) for n, c in calls.items()}, device, reps,
                              clock=clock)
        row = dict(batch=batch, reps=reps, max_abs_diff=diff,
                   forward={n: statistics.median(t) for n, t in fwd.items()},
                   forward_spread={n: spread(t) for n, t in fwd.items()},
                   forward_backward={n: statistics.median(t) for n, t in fb.items()},
                   forward_backward_spread={n: spread(t) for n, t in fb.items()},
                   bound={"forward": bound_seconds(call_cost(bm, batch, False, body_only), rates),
                          "forward_backward": bound_seconds(call_cost(bm, batch, True, body_only), rates)})
        if device.type == "cuda":
            row["bandwidth"] = forward_bandwidth(bm, calls["ours"], x, row["forward"]["ours"])
        rows.append(row)
        print(f"  {device.type} batch {batch}: " + ", ".join(
            f"{n} {row['forward'][n] * 1e3:.2f}/{row['forward_backward'][n] * 1e3:.2f} ms" for n in calls),
            flush=True)
    return dict(rows=rows, note=note, rates=rates, vertices=int(bm.v_template.shape[0]),
                posedirs=bm.posedirs is not None, nonzero_weights=bm.num_skinning_weights,
                max_weights_per_vertex=int((bm.weights != 0).sum(1).max()))


# ----------------------------------------------------------------------------------------- bounds
RATE_SHAPE = (31425, 486, 256)  # rows x inner x columns: the official SMPL-X correctives at batch 256


def host_rates(device, clock, reps=7):
    """This machine's float32 rates with the run's threads and clock: dense products (FLOP/s, a
    RATE_SHAPE matmul) and streaming a matrix of the correctives' size (bytes/s, the same matrix times
    one column, repeated with nothing in between, so as fast as this machine's caches allow)."""
    rows, inner, cols = RATE_SHAPE
    g = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=g).to(device)
    b = torch.randn(inner, cols, generator=g).to(device)
    out = torch.empty(rows, cols, device=device)
    t = time_alternating({"mm": lambda: torch.mm(a, b, out=out)}, device, reps, clock=clock)
    column = b[:, 0].contiguous()
    t.update(time_alternating({"mv": lambda: torch.mv(a, column)}, device, 3 * reps, clock=clock))  # alone: hot
    return dict(flops=2 * rows * inner * cols / statistics.median(t["mm"]),
                bytes=a.numel() * a.element_size() / statistics.median(t["mv"]))


def call_cost(bm, batch, backward: bool, body_only=False):
    """The least work of a forward (or forward + backward) at `batch`: FLOPs of its dense products
    (shape and pose correctives, the skinning blend and apply; forward kinematics is negligible) and
    the bytes it must move (read the blend shapes and correctives, write the mesh), in float32. The
    backward repeats each product once (the input gradients) and reads the same arrays again.
    body_only: only the body joints' correctives, as the other joints' features are zero."""
    V = bm.v_template.shape[0]
    K = bm.shapedirs.shape[-1]
    P = 0 if bm.posedirs is None else 9 * BODY_JOINTS if body_only else bm.posedirs.shape[0]
    flops = 2 * batch * 3 * V * (K + P) + 2 * 12 * batch * (bm.num_skinning_weights + V)
    read = 4 * 3 * V * (K + P)
    moved = read + 4 * 3 * V * batch
    return dict(flops=flops * (2 if backward else 1), bytes=moved + (read + 4 * 3 * V * batch if backward else 0))


def bound_seconds(cost, rates):
    """The shortest time this machine could do a call in: its FLOPs at the matmul rate or its bytes at
    the streaming rate, whichever takes longer."""
    return max(cost["flops"] / rates["flops"], cost["bytes"] / rates["bytes"])


# ----------------------------------------------------------------------------------------- CUDA bandwidth
_PEAK_BANDWIDTH_BY_NAME = {"H100 SXM": 3.35e12, "H100 PCIe": 2.0e12, "H100 NVL": 3.9e12, "H200": 4.8e12,
                           "A100-SXM4-80GB": 2.039e12, "A100-SXM4-40GB": 1.555e12, "A100-PCIE-40GB": 1.555e12,
                           "A100 80GB PCIe": 1.935e12, "L4": 0.3e12, "A10": 0.6e12, "T4": 0.32e12}


def device_peak_bandwidth(device):
    """Bytes/s of the device's memory: from the clock rate (kHz, double data rate) and bus width (bits)
    that torch reports, else from a table of data-sheet values by name; None if unknown."""
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "memory_clock_rate", 0)
    bus_bits = getattr(props, "memory_bus_width", 0)
    if clock_khz and bus_bits:
        return 2 * clock_khz * 1e3 * bus_bits / 8, "clock rate x bus width"
    for key, value in sorted(_PEAK_BANDWIDTH_BY_NAME.items(), key=lambda kv: -len(kv[0])):
        if key.lower() in props.name.lower():
            return value, "data sheet"
    return None, "unknown"


def forward_bandwidth(bm, call, x, seconds):
    """Achieved bandwidth of one forward: the buffers it reads (once) plus every byte it allocates
    (written once and read once), over its median time. A lower bound on the traffic: re-reads that
    miss the cache are not counted."""
    device = bm.v_template.device
    read = sum(b.numel() * b.element_size() for b in bm.buffers())
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_stats(device).get("allocated_bytes.all.allocated", 0)
    with torch.no_grad():
        call(x)
    torch.cuda.synchronize(device)
    allocated = torch.cuda.memory_stats(device).get("allocated_bytes.all.allocated", 0) - before
    traffic = read + 2 * allocated
    peak, source = device_peak_bandwidth(device)
    return dict(bytes=traffic, achieved=traffic / seconds, peak=peak, peak_source=source)


# ----------------------------------------------------------------------------------------- memory
def _vm_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_child(contender, mode, batch, path):
    """In a fresh process: peak extra resident memory (MiB) of one call at `batch`."""
    device = torch.device("cpu")
    _, calls, note = load_contenders(path, device)
    if contender not in calls:
        return dict(error=note)
    call = calls[contender]
    run = forward_only if mode == "forward" else forward_backward
    small = random_inputs(1, device, requires_grad=mode != "forward")
    run(call, small)  # first-call set-up outside the measurement
    x = random_inputs(batch, device, requires_grad=mode != "forward")
    before = _vm_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current resident size
    run(call, x)
    return dict(peak_mib=(_vm_kib("VmHWM") - before) / 1024)


def cpu_peak_memory(path, batch, threads):
    out = {}
    for mode in ("forward", "forward_backward"):
        for contender in CONTENDERS:
            cmd = [sys.executable, __file__, "--memory-child", contender, mode, str(batch), str(path),
                   "--threads", str(threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            try:
                out[(mode, contender)] = json.loads(res.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                out[(mode, contender)] = dict(error=(res.stderr.strip().splitlines() or ["no output"])[-1])
    return out


def cuda_peak_memory(path, batch, device):
    _, calls, _ = load_contenders(path, device)
    out = {}
    for mode, run in (("forward", forward_only), ("forward_backward", forward_backward)):
        for contender, call in calls.items():
            x = random_inputs(batch, device, requires_grad=mode != "forward")
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            run(call, x)
            torch.cuda.synchronize(device)
            out[(mode, contender)] = dict(peak_mib=(torch.cuda.max_memory_allocated(device) - before) / 2 ** 20)
            del x
    return out


# ----------------------------------------------------------------------------------------- VPoser
def bench_vposer(device, bm_path, quick, clock=time.perf_counter):
    """Decode / encode throughput (poses/s, batch 1024, eval mode) and a training step (frames/s,
    batch 512, the 2019 objective on 1000 loss vertices, Adam), or None when VPoser is not there."""
    try:
        from human_body_prior.priors.vposer import VPoser
        from human_body_prior.train.losses import BodySurface, vposer_loss
    except ImportError as exc:
        return dict(error=f"skipped: {exc}")
    g = torch.Generator().manual_seed(0)
    vp = VPoser(num_neurons=512, latentD=32, data_shape=[1, 21, 3]).to(device)
    n_inf, n_train = 1024, 512
    z = torch.randn(n_inf, 32, generator=g).to(device)
    poses = (torch.randn(n_inf, 63, generator=g) * 0.3).to(device)
    train_poses = poses[:n_train].clone()
    surface = BodySurface(bm_path, num_vertices=1000).to(device)
    opt = torch.optim.Adam(vp.parameters(), lr=1e-3)

    def decode():
        with torch.no_grad():
            vp.decode(z, output_type="aa")

    def encode():
        with torch.no_grad():
            vp.encode(poses).mean

    def train_step():
        out = vp(train_poses.reshape(n_train, 1, 21, 3), input_type="aa", output_type="matrot")
        loss = vposer_loss(VPoser.aa2matrot(train_poses.reshape(n_train, 1, 21, 3)), out["pose_matrot"],
                           out["mean"], out["std"], surface, kl_coef=5e-3, use_pose_term=True)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    reps = 5 if quick else 15
    vp.eval()
    t = time_alternating({"decode": decode, "encode": encode}, device, reps, clock=clock)
    vp.train()
    t.update(time_alternating({"train": train_step}, device, reps, clock=clock))
    return dict(decode=n_inf / statistics.median(t["decode"]), encode=n_inf / statistics.median(t["encode"]),
                train=n_train / statistics.median(t["train"]))


# ----------------------------------------------------------------------------------------- report
def machine_description(threads):
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical CPUs visible)" if names else cpu
    except OSError:
        pass
    lines = [f"- CPU: {cpu}; torch.set_num_threads({threads})",
             f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
             f"{platform.system()} {platform.release()}"]
    for dist in ("smplx", "body-models"):
        found = _version(dist)
        lines.append(f"- {dist} {found}" if found != "not installed" else f"- {dist} not installed: no comparison")
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)}")
    else:
        lines.append("- GPU: none (CUDA columns are skipped)")
    return "\n".join(lines)


def _ms(s):
    return f"{s * 1e3:.2f}" if s < 10 else f"{s * 1e3:.0f}"


def body_model_table(res):
    """Two tables, forward and forward + backward: times, ratios to each peer and to the bound; the
    forward table also gives the largest difference from each contender's vertices."""
    rows = res["rows"]
    have = [c for c in (*CONTENDERS, "compiled") if c in rows[0]["forward"]]
    peers = [c for c in PEERS if c in have]
    tables = []
    for key, part in (("forward", "forward"), ("forward_backward", "forward + backward")):
        head = ["batch"] + [f"{LABELS[c]} ms" for c in have] + [f"ours / {LABELS[c].split()[0]}" for c in peers]
        head += ["bound ms", "ours / bound"]
        if key == "forward":
            head += ["max abs diff vs " + LABELS[c] for c in have if c != "ours"]
        lines = [f"{part}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [str(r["batch"])] + [f"{_ms(r[key][c])} ±{r[key + '_spread'][c]:.0f}%" for c in have]
            cells += [f"**{r[key]['ours'] / r[key][c]:.2f}**" for c in peers]
            cells += [_ms(r["bound"][key]), f"**{r[key]['ours'] / r['bound'][key]:.2f}**"]
            if key == "forward":
                cells += [f"{r['max_abs_diff'][c]:.1e}" for c in have if c != "ours"]
            lines.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def bandwidth_table(res):
    lines = ["| batch | bytes moved (MB, lower bound) | achieved GB/s | device peak GB/s | share of peak |",
             "|---|---|---|---|---|"]
    for r in res["rows"]:
        b = r["bandwidth"]
        peak = f"{b['peak'] / 1e9:.0f} ({b['peak_source']})" if b["peak"] else "unknown"
        share = f"{100 * b['achieved'] / b['peak']:.0f}%" if b["peak"] else "-"
        lines.append(f"| {r['batch']} | {b['bytes'] / 1e6:.0f} | {b['achieved'] / 1e9:.0f} | {peak} | {share} |")
    return "\n".join(lines)


def memory_table(mem):
    lines = ["| | " + " | ".join(LABELS[c] for c in CONTENDERS) + " |", "|" + "---|" * (len(CONTENDERS) + 1)]
    for mode in ("forward", "forward_backward"):
        cells = []
        for c in CONTENDERS:
            m = mem.get((mode, c), {})
            cells.append(f"{m['peak_mib']:.0f} MiB" if "peak_mib" in m else f"n/a ({m.get('error', '')})")
        lines.append(f"| {mode.replace('_', ' + ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_atomic(path, text):
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "PERFORMANCE.md"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--model", action="append", default=None,
                    help="model file(s) to measure; default: the synthetic SMPL-X and the shipped open one")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument("--no-cpu", action="store_true", help="CUDA rows only (a lent GPU machine's short check)")
    ap.add_argument("--clock", choices=("both", "thread", "wall"), default="both",
                    help="CPU timings: 'wall' time with --threads threads; 'thread', the CPU time of the calling "
                         "thread with 1 thread, which other processes on a shared machine disturb far less; "
                         "'both' (default) runs the two")
    ap.add_argument("--compile", action="store_true",
                    help="add torch.compile(BodyModel) as a contender (compiling takes minutes on 2 cores)")
    ap.add_argument("--no-body-only", dest="body_only", action="store_false",
                    help="skip the body-only calls (measured on files with pose correctives)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-vposer", action="store_true")
    ap.add_argument("--memory-child", nargs=4, metavar=("CONTENDER", "MODE", "BATCH", "FILE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        contender, mode, batch, path = args.memory_child
        print(json.dumps(memory_child(contender, mode, int(batch), path)))
        return

    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_body_model_") as tmp:
        models = args.model
        if not models:
            synthetic = write_synthetic_model(Path(tmp) / "SMPLX_SYNTHETIC.npz", "smplx", dtype=np.float32)
            models = [synthetic]
            from human_body_prior.support_paths import default_body_model_path
            shipped = Path(default_body_model_path("smplx", "neutral"))
            if shipped.exists():
                models.append(str(shipped))
        cpu_clocks = [] if args.no_cpu else ["thread", "wall"] if args.clock == "both" else [args.clock]
        runs = [(torch.device("cpu"), 1 if clock == "thread" else args.threads, clock) for clock in cpu_clocks]
        if torch.cuda.is_available() and not args.no_cuda:
            runs.append((torch.device("cuda"), args.threads, "wall"))
        if not runs:
            ap.error("nothing to measure: --no-cpu, and no CUDA device (or --no-cuda)")
        sections = []
        for path in models:
            name = "synthetic official-layout SMPL-X" if Path(path).parent == Path(tmp) else Path(path).name
            for device, threads, clock in runs:
                where = (f"{device.type}, {threads} thread{'s' if threads > 1 else ''}, "
                         f"{'CPU time of the calling thread' if clock == 'thread' else 'wall time'}"
                         if device.type == "cpu" else device.type)
                print(f"{name} on {where}", flush=True)
                torch.set_num_threads(threads)
                timer = time.thread_time if clock == "thread" else time.perf_counter
                res = bench_body_model(path, device, args.batches, args.quick, timer, args.compile)
                body = None
                if res["posedirs"] and args.body_only:
                    body = bench_body_model(path, device, BODY_ONLY_BATCHES, args.quick, timer, rates=res["rates"],
                                            body_only=True)
                torch.set_num_threads(args.threads)
                text = [f"### {name}, {where}, float32",
                        f"{res['vertices']} vertices, pose correctives {'on' if res['posedirs'] else 'off (all zero)'}, "
                        f"{res['nonzero_weights']} non-zero skinning weights (at most "
                        f"{res['max_weights_per_vertex']} per vertex). This machine in this run: "
                        f"{res['rates']['flops'] / 1e9:.0f} GFLOP/s in a matmul, {res['rates']['bytes'] / 1e9:.1f} GB/s "
                        "streaming a matrix the size of the correctives (the bound's rates; see Method).", "",
                        body_model_table(res)]
                if res["note"]:
                    text += ["", res["note"]]
                if body is not None:
                    text += ["", "Body-only calls (root, body pose, betas and translation given; hands, jaw, eyes "
                             "and expression at rest: BodyModel's stored zeros, the peers' explicit zeros). The "
                             "bound counts the body joints' correctives only. BodyModel reads them from one "
                             "contiguous copy of those rows that it keeps (lbs.JointRows).", "",
                             body_model_table(body)]
                if device.type == "cuda":
                    text += ["", "Achieved memory bandwidth of the BodyModel forward:", "", bandwidth_table(res)]
                if not args.skip_memory and (device.type == "cuda" or clock == cpu_clocks[-1]):
                    big = max(args.batches)
                    mem = (cpu_peak_memory(path, big, args.threads) if device.type == "cpu"
                           else cuda_peak_memory(path, big, device))
                    text += ["", f"Peak extra memory at batch {big}:", "", memory_table(mem)]
                sections.append("\n".join(text))
        vposer = {}
        for device, threads, clock in ([] if args.skip_vposer else list(dict.fromkeys([runs[0]] + [r for r in runs if r[0].type == "cuda"]))):
            torch.set_num_threads(threads)
            label = (f"cpu, {threads} thread{'s' if threads > 1 else ''}, "
                     f"{'thread CPU time' if clock == 'thread' else 'wall time'}" if device.type == "cpu" else "cuda")
            vposer[label] = bench_vposer(device, models[-1], args.quick,
                                         time.thread_time if clock == "thread" else time.perf_counter)
        torch.set_num_threads(args.threads)

    load_after = os.getloadavg()
    cmd = "PYTHONPATH=. python benchmarks/bench_body_model.py" + (" " + " ".join(argv if argv is not None
                                                                             else sys.argv[1:])).rstrip()
    doc = [
        "# Performance", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} in "
        f"{time.time() - started:.0f} s with", "", f"    {cmd}", "", machine_description(args.threads),
        f"- load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
        f"{os.cpu_count()} CPUs: the contenders alternate so that load from other processes hits them alike; "
        "±x% is half the interquartile range of the repetitions relative to the median", "",
        "## BodyModel", "",
        "Times are medians in milliseconds; *ours / smplx* and *ours / body-models* below 1 mean BodyModel is faster. "
        "*plain dense path* is lbs.py's reference path (a (3, 4) transform blended from all joints for every "
        "vertex, as one product with the vertices last; it shares the level-wise forward kinematics; at batches "
        "up to 4 it is the path BodyModel takes, and it runs second, after a cache-warming BodyModel call). "
        "The fast path keeps the mesh vertex-major "
        "(V, 3, B), applies shape and pose correctives as matrix products, skins each vertex "
        "with only its non-zero weights (every one, so outputs are unchanged; tests/test_lbs_fast_paths.py), "
        "and goes a few hundred vertices at a time, so that each chunk is corrected, skinned and written "
        "out (and, backward, differentiated) while in cache; at batches up to 4 it takes the dense path, "
        "which blends with the vertices last and is faster there. "
        "Forward + backward is `v.sum().backward()` with gradients for all pose, shape and translation inputs.",
        "", "\n\n".join(sections), "",
        "## VPoser v1 (512 hidden, 32 latent, 21 joints)", "",
        "| device | decode poses/s (batch 1024) | encode poses/s (batch 1024) | training step frames/s (batch 512) |",
        "|---|---|---|---|"]
    for dev, v in vposer.items():
        if "error" in v:
            doc.append(f"| {dev} | {v['error']} | | |")
        else:
            doc.append(f"| {dev} | {v['decode']:,.0f} | {v['encode']:,.0f} | {v['train']:,.0f} |")
    doc += ["", "The training step is the 2019 objective (KL + mesh L1 on 1000 body vertices + rotation "
            "MSE) with Adam, on the last model file above.", "", "## Method", "", __doc__.split("\n\n", 2)[2].strip(), ""]
    write_atomic(args.out, "\n".join(doc))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
