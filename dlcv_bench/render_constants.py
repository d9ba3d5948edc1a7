"""Renderers of ``scripts/render_docs.py`` for the constants with a source or a measurement: the 2080 Ti's
SD UNet speed and hw2_3.sh's time (``docs/results/sd_unet_flops.json``), the SD memory estimator against
measured peaks (``sd_memory_check.json``) and the reference network's recorded speeds
(``reference_speeds.json``)."""

from __future__ import annotations

from collections.abc import Callable

from dlcv_bench.render import load

LIMIT_S = 600  # hw2_3.sh's course limit


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s = {seconds / 60:.1f} min"


def sd_hw2_3_time() -> str:
    """The README's hw2_3 time: the arithmetic behind the 2080 Ti's speed and the samplers' UNet time."""
    data = load("sd_unet_flops.json")
    card, ref = data["card"], data["reference"]
    evals = data["evals_per_s_rounded"]
    names = {"ddim": "DDIM", "dpm++": "DPM-Solver++(2M)"}
    images = data["hw2_3"]["images"]
    latent, peak = data["unet"]["latent"], card["tflops"][card["accumulate"]]
    lines = [
        f"One evaluation of SD v1's UNet at 512 px (a {latent}x{latent} latent) is "
        f"{data['unet']['flops']['total'] / 1e9:.0f} GFLOPs (`FlopCounterMode`). The 2080 Ti's fp16 "
        f"tensor peak with fp32 accumulate, the one PyTorch's fp16 kernels use, is {peak} "
        f"TFLOPS (Turing whitepaper, {card['boost_mhz']} MHz reference boost; "
        f"{card['tflops']['fp16_accumulate']} with fp16 accumulate): at 100% of it, "
        f"{data['evals_per_s_at_peak']:.0f} evaluations/s. Assumed: the 2080 Ti reaches the fraction of "
        f"its peak that SD's UNet reaches on a Turing T4 in diffusers' published benchmark "
        f"({ref['iterations_per_s']} "
        f"guided iterations/s at batch 1, 512 px, fp16, SDPA: {data['reference_achieved_tflops']:.1f} of the "
        f"T4's {ref['tflops']:.0f} TFLOPS, {data['utilization']:.1%}), which gives {evals} evaluations/s "
        f"(`RTX_2080_TI_UNET_EVALS_PER_S`; {data['previous_evals_per_s']} before it had a source):",
        "",
        f"| sampler | UNet evaluations for {images} images | at {evals} evaluations/s |",
        "|---|---|---|",
    ]
    for row in data["hw2_3"]["rows"]:
        name = f"{names[row['solver']]} {row['steps']}"
        if row["solver"] == "ddim":
            name += f" (`--solver ddim --steps {row['steps']}`)"
            count = f"{images} x {row['steps']} x 2 = {row['evaluations']:,}"
        else:
            count = f"{row['evaluations']:,}"
        time = _minutes(row["seconds"]) + (": over the limit" if row["seconds"] > LIMIT_S else "")
        if row["default"]:
            name, count, time = f"**{name} (default)**", f"**{count}**", f"**{time}**"
        lines.append(f"| {name} | {count} | {time} |")
    lines += ["", f"Computed on {data['date']} at commit {data['commit']}: `{data['command']}`."]
    return "\n".join(lines)


def sd_memory_check() -> str:
    """The SD memory estimator's fp32 figures beside the peaks measured on the CPU, and the tolerance."""
    data = load("sd_memory_check.json")
    low, high = data["tolerance"]
    lines = [
        "| step | batch | px | measured peak (live tensors) | resident peak | estimated (fp32) "
        "| measured / estimated |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        rss = f"{r['rss_bytes'] / 1e6:,.0f} MB" if r["rss_bytes"] is not None else "n/a"
        ratio = f"{r['ratio']:.2f}" + ("" if r["holds"] else " (outside)")
        lines.append(
            f"| {r['step']} | {r['batch']} | {r['resolution']} | {r['tensor_bytes'] / 1e6:,.0f} MB | {rss} "
            f"| {r['estimate_bytes'] / 1e6:,.0f} MB | {ratio} |"
        )
    ratios = [r["ratio"] for r in data["rows"]]
    verdict = "every step within it" if data["held"] else "NOT every step within it"
    lines += [
        "",
        f"Tolerance: measured / estimated between {low:.2f} and {high:.2f} (the estimate is an upper bound, "
        f"at most {1 / low:.0f}x loose): {verdict} (ratios {min(ratios):.2f} - {max(ratios):.2f}). "
        f"{data['model']}, {data['dtype']} on {data['cpus']} x {data['cpu']} ({data['threads']} threads, "
        f"torch {data['torch']}, {data['seconds'] / 60:.0f} min), {data['date']}, commit {data['commit']}: "
        f"`{data['command']}`.",
    ]
    return "\n".join(lines)


def sd_memory_defaults() -> str:
    """The README's estimated peaks of the course jobs at their defaults (fp16), from the estimator."""
    data = load("sd_memory_defaults.json")
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    g, t = data["generation"], data["training"]
    return (
        f"About {gb(g['total_bytes'])} of peak allocated memory for generation (fp16 or bf16, batch "
        f"{g['batch']} at {g['resolution']} px: {gb(g['weight_bytes'])} of weights, {gb(g['working_bytes'])} "
        f"of activations, {gb(g['reserve_bytes'])} kept free) and {gb(t['total_bytes'])} for Textual "
        f"Inversion (batch {t['batch']} at {t['resolution']} px: {gb(t['weight_bytes'])} of weights with the "
        f"text encoder and VAE in fp32, {gb(t['working_bytes'])} of activations, {gb(t['reserve_bytes'])}), "
        f"under the course's {gb(data['limit_bytes'])} (`{data['command']}`, commit {data['commit']})."
    )


def reference_speeds() -> str:
    """The recorded speeds of the reference network, with where each came from."""
    from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S, measured_idle

    data = load("reference_speeds.json")
    lines = [
        "| steps/s | threads | machine | date | commit | load (1 min) | how |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in data["measurements"]:
        how = f"copied from `{m['copied_from']}`" if "copied_from" in m else f"`{m['command']}`"
        load_avg = f"{m['load_average_1min']:.1f}" if m.get("load_average_1min") is not None else "-"
        lines.append(
            f"| {m['steps_per_s']:.2f} | {m['threads']} | {m['cpus']} x {m['cpu']} | {m['date']} "
            f"| {m['commit']} | {load_avg} | {how} |"
        )
    two = [m["steps_per_s"] for m in data["measurements"] if m["threads"] == 2 and measured_idle(m)]
    lines += [
        "",
        f"`SLOW_MACHINE_STEPS_PER_S` = {SLOW_MACHINE_STEPS_PER_S}: at most the slowest 2-thread speed "
        f"recorded on an idle machine ({min(two):.2f}; a run whose 1-minute load average was half the CPUs "
        "or more measured its neighbours too and does not count); the 3.1 itself was measured before "
        "measurements were kept (commit 7a5529c).",
    ]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[], str]] = {
    "sd-hw2-3-time": sd_hw2_3_time,
    "sd-memory-check": sd_memory_check,
    "sd-memory-defaults": sd_memory_defaults,
    "reference-speeds": reference_speeds,
}
