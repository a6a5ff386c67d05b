"""Algorithm Distillation explorer: edit a Dark Room context, watch the AD transformer respond.

Run with ``streamlit run lib/rlinterp/explore/ad.py`` (``rli explore ad``). In the app one picks a goal, generates a
context (the source learner's history up to episode N, expert or random episodes, or nothing), edits it (erase or
move the rewards, toggle the reward of single steps, drop episodes) and walks a path in the current episode with
arrow buttons; the page shows the model's next-action probabilities, the attention of every layer and head from the
current step over the context (as a strip over positions and summed per grid cell), and the readouts of linear probes
for "goal found yet" and the goal's x/y coordinates fitted on the fly on the model's own rollouts (cached).

The computation lives in :mod:`rlinterp.studies.ad` (``make_context``, ``edit_rewards``, ``walk``,
``context_tokens``, ``analyse``, ``fit_probes``, ``probe_readout``, ``draw_context``); this module is only the thin
Streamlit layer (:func:`main`), and Streamlit is imported only there.
"""
from __future__ import annotations

import numpy as np
import torch

from rlinterp.envs import darkroom as dr
from rlinterp.models import ad_transformer as adt
from rlinterp.studies.ad import (SIZE, T, analyse, attention_on_grid, context_tokens, draw_context,
                                 edit_rewards, fit_probes, make_context, probe_readout, walk)


# ----------------------------------------------------------------------------------------------------------------
# Drawing (matplotlib) and the Streamlit page


def _cached_probes(model: adt.ADTransformer) -> dict:
    """:func:`fit_probes` once per Streamlit server (the model argument is not hashed)."""
    import streamlit as st

    @st.cache_resource(show_spinner="fitting probes on the model's rollouts ...")
    def cached(_model):
        return fit_probes(_model)

    return cached(model)


def main() -> None:  # pragma: no cover - exercised by tests/test_ad_explorer.py through AppTest
    import matplotlib.pyplot as plt
    import pandas as pd
    import streamlit as st

    from rlinterp import artifacts

    st.set_page_config(page_title="AD explorer", layout="wide")
    st.title("Algorithm Distillation explorer (Dark Room)")
    torch.set_num_threads(1)
    model = st.cache_resource(artifacts.load)("ad/darkroom_ad")  # with model.stride and model.source
    K = model.ad_cfg.n_ctx_episodes
    ss = st.session_state
    ss.setdefault("path", [])
    ss.setdefault("toggles", [])

    with st.sidebar:
        st.header("Context")
        gx = st.number_input("goal x", 0, SIZE - 1, 1, key="goal_x")
        gy = st.number_input("goal y", 0, SIZE - 1, 1, key="goal_y")
        kind = st.selectbox("past episodes from", ["source", "expert", "random", "empty"], key="kind")
        n_past = st.number_input("number of past episodes", 0, K - 1, min(3, K - 1), key="n_past")
        upto = st.number_input(f"source ({model.source}): up to episode N", 1, 120,
                               max(1, int(n_past) - 1) * model.stride + 1, key="upto")
        seed = st.number_input("seed", 0, 10_000, 0, key="seed")
        st.header("Edit rewards")
        mode = st.radio("rewards", ["keep", "erase", "cells"], key="mode",
                        format_func={"keep": "as generated", "erase": "erase all",
                                     "cells": "only on the cells below"}.get)
        cells_txt = st.text_input("rewarded cells: x,y; x,y", "4,2", key="cells")
        te = st.number_input("toggle reward: episode", 0, max(0, int(n_past) - 1), 0, key="tog_e")
        tt = st.number_input("toggle reward: step", 0, T - 1, 0, key="tog_t")
        if st.button("toggle", key="toggle"):
            ss.toggles.append((int(te), int(tt)))
        if st.button("clear toggles", key="clear_toggles"):
            ss.toggles = []
        drop = st.multiselect("drop past episodes", list(range(int(n_past))), key="drop")

    try:
        cells = [tuple(int(v) for v in c.split(",")) for c in cells_txt.split(";") if c.strip()]
        base = st.cache_data(make_context)((int(gx), int(gy)), kind, int(upto), int(n_past), model.stride,
                                           int(seed), model.source)
        toggles = [t for t in ss.toggles if t[0] < base.n_episodes]
        ctx = edit_rewards(base, mode, cells, toggles, drop)
    except ValueError as err:
        st.error(f"Cannot build this context: {err}")
        st.stop()

    st.subheader("Current episode: walk a path (the model is queried at the agent's current cell)")
    cols = st.columns(7)
    for i, name in enumerate(dr.ACTIONS):
        if cols[i].button(name, key=f"act_{name}") and len(ss.path) < T - 1:
            ss.path.append(i)
    if cols[5].button("undo", key="undo") and ss.path:
        ss.path.pop()
    if cols[6].button("clear path", key="clear_path"):
        ss.path = []

    _, cur_rew, cur_pos = walk(ctx.goal, ss.path)
    tokens = context_tokens(ctx, ss.path, K)
    res = analyse(model, tokens)
    probes = _cached_probes(model)
    readout = probe_readout(probes, res["resid"])

    c1, c2, c3 = st.columns([1, 1, 1.2])
    with c1:
        st.pyplot(draw_context(ctx, cur_pos))
        st.caption(f"{ctx.n_episodes} past episodes, {int(ctx.rewards.sum())} rewarded steps; current step "
                   f"{len(ss.path)}, reward so far {cur_rew.sum():.0f}. Red squares: rewarded cells in the context; "
                   f"star: the room's goal.")
    with c2:
        st.markdown("**Next-action probabilities**")
        probs = pd.DataFrame({"action": list(dr.ACTIONS), "probability": res["probs"]})
        st.dataframe(probs.style.format({"probability": "{:.3f}"}), hide_index=True, key="probs_table")
        st.markdown(f"Most likely: **{dr.ACTIONS[int(res['probs'].argmax())]}** "
                    f"({res['probs'].max():.2f})")
    with c3:
        st.markdown("**Probe readouts at the current step** (fitted on the model's own rollouts)")
        st.dataframe(pd.DataFrame([{k: v for k, v in r.items() if k != "map"} for r in readout]),
                     hide_index=True, key="probe_table")
        layer_p = st.selectbox("goal-location map of layer", list(range(len(readout))), len(readout) - 1,
                               key="probe_layer")
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(readout[layer_p]["map"], cmap="magma", origin="upper")
        ax.plot(ctx.goal[0], ctx.goal[1], "*", color="gold", ms=12, mec="k")
        ax.set_title(f"P(goal at cell), after block {layer_p}", fontsize=9)
        st.pyplot(fig)

    st.subheader("Attention from the current step")
    L, H, P = res["patterns"].shape
    a1, a2 = st.columns([2, 1])
    with a1:
        fig, axes = plt.subplots(L, 1, figsize=(10, 1.1 * L + 0.6), squeeze=False)
        for l in range(L):
            axes[l, 0].imshow(res["patterns"][l], aspect="auto", cmap="viridis", vmin=0, vmax=1)
            for b in range(T, P, T):
                axes[l, 0].axvline(b - 0.5, color="w", ls=":", lw=1)
            for k in np.nonzero(res["prev_reward"])[0]:
                axes[l, 0].plot([k, k], [-0.5, -0.1], color="r", lw=3)
            axes[l, 0].set_yticks(range(H), [f"L{l}H{h}" for h in range(H)], fontsize=7)
        axes[-1, 0].set_xlabel("key position (dotted: episode boundaries; red: rewarded steps)")
        fig.tight_layout()
        st.pyplot(fig)
    with a2:
        lh = st.selectbox("head (attention per grid cell)", [f"L{l}H{h}" for l in range(L) for h in range(H)],
                          key="head")
        l, h = int(lh[1]), int(lh[3])
        st.pyplot(draw_context(ctx, cur_pos, attention_on_grid(res["patterns"][l, h], res["obs"])))
    plt.close("all")


if __name__ == "__main__":
    main()
