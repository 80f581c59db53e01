"""Where gradc's native code computes four (or eight) numbers at once: the vector loops
of the neuron loss's gradient, in optimized LLVM IR (``Lowered.llvm_ir()``) and in the
machine's assembly (``Lowered.asm()``), with what each vector instruction does.

    C(w, b, X, y) = 1/N Σ_i (max(0, w·x_i + b) − y_i)²
    dC/dw = 2/N Σ_i 1[z_i > 0] (z_i − y_i) x_iᵀ

gradc fuses the forward and the adjoint graph into loop nests over the rows of X; inside
a row, the loops over the d features are what LLVM vectorizes: the dot product w·x_i (a
reduction: vector accumulators) and the update dw += g_i x_i (a broadcast g_i times a
chunk of x_i, added into dw).  Vector types are ``<4 x double>`` (AVX2, ``ymm`` registers)
or ``<8 x double>`` (AVX-512, ``zmm``), depending on the CPU.

    python examples/inspect_ir.py
"""
import re
import sys

import numpy as np

import gradc
import gradc.numpy as gnp


def loss(w, b, X, y):
    z = X @ w + b
    return gnp.mean((gnp.maximum(0.0, z) - y) ** 2)


IR_NOTES = [  # (pattern, note); {n} is the vector width
    (r"= phi <\d+ x double>", "{n} running partial sums, one per lane, carried around the loop: "
                              "the accumulator of a reduction"),
    (r"= load <\d+ x double>", "load {n} consecutive doubles (a chunk of a row x_i of X, of w or of dw)"),
    (r"= fmul .*<\d+ x double>", "{n} multiplications in one instruction"),
    (r"= fadd .*<\d+ x double>", "{n} additions in one instruction ('reassoc' lets LLVM reorder a sum, "
                                 "which is what allows a vectorized reduction)"),
    (r"= fsub .*<\d+ x double>", "{n} subtractions in one instruction"),
    (r"llvm\.fmuladd|llvm\.fma", "fused multiply-add on {n} lanes"),
    (r"insertelement <\d+ x double>", "put a scalar (g_i) into lane 0 ..."),
    (r"shufflevector <\d+ x double>", "... and copy it to all {n} lanes (a splat: g_i x_i multiplies every "
                                      "feature by the same g_i)"),
    (r"= fcmp .*<\d+ x double>", "{n} comparisons at once (the case split 1[z > 0])"),
    (r"= select .*<\d+ x double>", "per lane: keep the gradient where the mask is set, else 0"),
    (r"store <\d+ x double>", "write {n} doubles back (dw += g_i x_i)"),
    (r"llvm\.vector\.reduce\.fadd", "add the {n} lanes together (end of a reduction)"),
]

ASM_NOTES = {
    "vmovupd": "move {n} doubles between memory and a vector register (unaligned)",
    "vmovapd": "move {n} doubles (aligned)",
    "vbroadcastsd": "copy one double to all {n} lanes (the splat of g_i)",
    "vmulpd": "{n} multiplications",
    "vaddpd": "{n} additions",
    "vsubpd": "{n} subtractions",
    "vfmadd231pd": "{n} fused multiply-adds: acc += a·b",
    "vfmadd213pd": "{n} fused multiply-adds",
    "vfmadd132pd": "{n} fused multiply-adds",
    "vextractf128": "take the upper half of a ymm register (summing the lanes at the end of a reduction)",
    "vextractf64x4": "take the upper half of a zmm register (summing the lanes)",
    "vblendpd": "pick lanes from two registers",
    "vblendvpd": "pick lanes by a mask (a select)",
    "vcmppd": "{n} comparisons into a mask",
    "vmaxpd": "{n} maxima (max(0, z))",
    "vandpd": "{n} bitwise ands (apply a mask)",
    "vxorpd": "zero a register (x xor x)",
    "vhaddpd": "add neighbouring lanes",
    "vunpckhpd": "move the high double of each pair down (summing lanes)",
    "vpermilpd": "swap doubles within a register (summing lanes)",
    "vshufpd": "shuffle doubles (summing lanes)",
}


def blocks(text, label_re):
    """[(label, [lines])] of an IR function body or an assembly listing."""
    out, label, cur = [], None, []
    for line in text.splitlines():
        m = re.match(label_re, line)
        if m:
            if label is not None:
                out.append((label, cur))
            label, cur = m.group(1), []
        elif label is not None:
            cur.append(line)
    if label is not None:
        out.append((label, cur))
    return out


def width(lines):
    ns = [int(n) for line in lines for n in re.findall(r"<(\d+) x double>", line)]
    return max(ns) if ns else 0


def grouped(rows):
    """Collapse runs of lines with the same note (LLVM unrolls the vector loop 4 times)."""
    out = []
    for text, note in rows:
        if out and note and out[-1][1] == note:
            out[-1][2] += 1
        else:
            out.append([text, note, 1])
    return out


def show_ir_loop(label, lines, n, what):
    print(f"  loop '{label}': {what}")
    rows, book = [], 0
    for line in lines:
        s = line.strip().split(", !")[0]          # drop alias metadata
        if not s or s.startswith(";"):
            continue
        note = next((t.format(n=n) for p, t in IR_NOTES if re.search(p, s)), None)
        if note is None:
            book += 1
            continue
        rows.append((s, note))
    for text, note, k in grouped(rows):
        more = f" (and {k - 1} more like it)" if k > 1 else ""
        print(f"    {text[:74]:<74}  ; {note}{more}")
    print(f"    ... and {book} lines of loop bookkeeping (index, addresses, compare, branch)")


ASM_LANES = {"xmm": 2, "ymm": 4, "zmm": 8}


def show_asm_loop(label, lines, reg):
    print(f"  the loop '{label}' (the one with the most {reg} instructions):")
    rows, book = [], 0
    for line in lines:
        s = line.strip()
        if not s or s.startswith(("#", ".")):
            continue
        mnem = s.split()[0]
        regs = re.findall(r"%([xyz]mm)\d+", s)
        lanes = ASM_LANES[regs[0]] if regs else 1
        note = ASM_NOTES.get(mnem, "")
        if note:
            rows.append((s.replace("\t", " "), note.format(n=lanes) + (f" ({regs[0]})" if regs else "")))
        else:
            book += 1
        if mnem.startswith("j") and label in s:    # the jump back: end of the loop body
            break
    for text, note, k in grouped(rows):
        more = f" (and {k - 1} more like it)" if k > 1 else ""
        print(f"    {text[:48]:<48}  # {note}{more}")
    print(f"    ... and {book} instructions of loop bookkeeping")


def main():
    rng = np.random.default_rng(0)
    N, d = 1000, 64
    X, y = rng.normal(size=(N, d)), rng.normal(size=N)
    w, b = rng.normal(size=d) / 8, 0.1
    low = gradc.value_and_grad(loss, argnums=(0, 1), backend="llvm").lower(w, b, X, y)
    ir, asm = low.llvm_ir(), low.asm()

    vec_ir = [line for line in ir.splitlines() if re.search(r"<\d+ x double>", line)]
    n = width(vec_ir)
    print(f"optimized LLVM IR of value_and_grad(loss): {len(ir.splitlines())} lines, "
          f"{len(vec_ir)} of them on vectors of doubles (widest <{n} x double>)")
    if not vec_ir:
        print("  no vector instructions: this CPU (or LLVM's cost model) chose scalar code")
        return 0
    loops = [(lab, body) for lab, body in blocks(ir, r"^([\w.\-]+):") if "vector.body" in lab
             and "epilog" not in lab]
    red = next(((lab, body) for lab, body in loops if any(re.search(r"phi <\d+ x double>", x) for x in body)), None)
    upd = next(((lab, body) for lab, body in loops if any(re.search(r"store <\d+ x double>", x) for x in body)
                and not any(re.search(r"phi <\d+ x double>", x) for x in body)), None)
    if red:
        show_ir_loop(red[0], red[1], width(red[1]), "a reduction over the features, the dot product w·x_i")
    if upd:
        show_ir_loop(upd[0], upd[1], width(upd[1]), "an update, dw += g_i x_i: row i's term of Σ_i g_i x_iᵀ")
    print()

    reg = "zmm" if re.search(r"%zmm\d", asm) else "ymm" if re.search(r"%ymm\d", asm) else "xmm"
    lanes = {"zmm": 8, "ymm": 4, "xmm": 2}[reg]
    packed = [line for line in asm.splitlines() if re.search(r"\bv\w+pd\b", line) and f"%{reg}" in line]
    print(f"assembly: {len(asm.splitlines())} lines, {len(packed)} packed-double instructions on {reg} "
          f"registers ({lanes * 64} bits = {lanes} doubles each; 'pd' = packed double, 'sd' = scalar)")
    loops = [(lab, body) for lab, body in blocks(asm, r"^(\.?\w+):")
             if any(x.strip().startswith("j") and lab in x for x in body)]
    best = max(loops, default=None,
               key=lambda lb: sum(1 for x in lb[1] if re.search(r"\bv\w+pd\b", x) and f"%{reg}" in x))
    if best:
        show_asm_loop(best[0], best[1], reg)
    print()
    print("Print all of it with:  gradc ir  model.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' --wrt w,b")
    print("                       gradc asm model.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' --wrt w,b")
    return 0


if __name__ == "__main__":
    sys.exit(main())
