import sys, os, time, json, subprocess, numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voxmamba_twin as t
out = os.environ.get("OUT", "/tmp")
print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(), flush=True)
torch.set_num_threads(8)
for name, S in (("small", 32), ("base", 64)):
    cfg = t.config_preset(name, 3)
    m = t.build_model(cfg, seed=0).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if ".offset.pw." in n:
                p.normal_(0, 0.05)
    d = f"/tmp/pc_{name}"; os.makedirs(d, exist_ok=True)
    t.save_hdf5(m, dict(cfg), f"{d}/m.h5")
    x = np.random.RandomState(1).randn(1, S, S, S, 1).astype(np.float32)
    np.save(f"{d}/in.npy", x)
    t0 = time.time()
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    print(name, S, "cpu fwd s", round(time.time() - t0, 2), flush=True)
    np.save(f"{d}/cpu.npy", y)
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "parity_check.py"), "--weights", f"{d}/m.h5",
                        "--input", f"{d}/in.npy", "--engine-output", f"{d}/cpu.npy", "--device", "cuda"], capture_output=True, text=True)
    print("parity cuda-vs-cpu", name, "rc", r.returncode, r.stdout.strip(), r.stderr[-2000:], flush=True)

# base at 128^3 on cuda, fp32 and bf16 autocast: time and peak memory
m = t.build_model(t.config_preset("base", 3), seed=0).cuda().eval()
x = torch.randn(1, 128, 128, 128, 1, device="cuda")
for mode in ("fp32", "bf16"):
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "bf16")):
        for i in range(3):
            torch.cuda.synchronize(); t0 = time.time()
            y = m(x)
            torch.cuda.synchronize(); dt = time.time() - t0
    print("base 128^3", mode, "s/fwd", round(dt, 3), "peak GiB", round(torch.cuda.max_memory_allocated() / 2**30, 1),
          "finite", bool(torch.isfinite(y).all()), y.dtype, tuple(y.shape), flush=True)
