"""Hooked networks, one file each (the network, its config and its hook names), like nanoGPT's ``model.py``.

``layers`` (the one hooked Linear+ReLU block and MLP stack) · ``qnet`` (coin-flip Q-network) · ``ego_attention``
(highway ego-attention and MLP Q-networks) · ``ad_transformer`` (Algorithm Distillation transformer and its token
encoding) · ``planted`` (networks with planted circuits, for validating the interpretability methods).

Every network is a TransformerLens ``HookedRootModule`` (or ``HookedTransformer``) and uses TransformerLens hook
names where the concept is the same; every Q-network exposes its Q-values at ``hook_q_values`` and its readout
layer as ``head``.
"""
