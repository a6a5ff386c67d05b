"""Interpretability methods for any TransformerLens-hooked model (one file per method).

``graph`` (nodes/edges/edge masks) · ``patching`` (resample/mean/zero ablation; metrics) · ``attribution_patching``
(attribution patching, EAP, EAP-IG) · ``acdc`` (ACDC, threshold sweeps, ROC AUC) · ``scrubbing`` (causal scrubbing) ·
``captum`` (Captum attributions by hook name) · ``probes`` (linear and spatial probes that predict) · ``sae``
(sparse autoencoders through SAELens, their metrics) · ``bilinear`` (eigenfilters of bilinear layers) · ``lens``
(logit lens) ·
``featvis`` · ``circuit_plots`` (drawing circuits) · ``editing`` (ablations, attention masks, steering).
"""
from rlinterp.interp.acdc import acdc, acdc_sweep, roc_auc, roc_points
from rlinterp.interp.attribution_patching import attribution_patching, eap, eap_ig
from rlinterp.interp.bilinear import (Eigenfilters, eigen_contributions, eigenfilters, input_patches, interaction_matrix,
                                     remove_components)
from rlinterp.interp.captum import feature_ablation, integrated_gradients, layer_conductance, neuron_conductance
from rlinterp.interp.circuit_plots import draw_circuit
from rlinterp.interp.editing import ablate, edited, mask_attention, mean_difference, run_edited, steer, steer_at
from rlinterp.interp.featvis import maximize_continuous, maximize_discrete
from rlinterp.interp.graph import (
    Circuit, Edge, EdgeGroup, Graph, ModelFlagWarning, Node, check_hooks, get_graph, mlp_graph, transformer_graph,
)
from rlinterp.interp.lens import logit_lens
from rlinterp.interp.patching import (
    ablation_cache, kl_metric, logit_diff_metric, mse_metric, patch_edges, patch_nodes, restored_metric,
)
from rlinterp.interp.probes import (ProbeResult, SpatialProbeResult, cache_hook, fit_probe, fit_spatial_probe,
                                    probe_hook)
from rlinterp.interp.sae import SAEConfig, ablate_latents, encode, mmcs, sae_metrics, spatial_samples, train_sae
from rlinterp.interp.scrubbing import Hypothesis, causal_scrubbing

__all__ = [
    "acdc", "acdc_sweep", "roc_auc", "roc_points", "attribution_patching", "eap", "eap_ig", "feature_ablation",
    "integrated_gradients", "layer_conductance", "neuron_conductance", "draw_circuit", "maximize_continuous",
    "maximize_discrete", "Circuit", "Edge", "EdgeGroup", "Graph", "ModelFlagWarning", "Node", "check_hooks", "get_graph",
    "mlp_graph",
    "transformer_graph", "logit_lens", "ablation_cache", "kl_metric", "logit_diff_metric", "mse_metric",
    "patch_edges", "patch_nodes", "restored_metric", "ProbeResult", "SpatialProbeResult", "cache_hook", "fit_probe", "fit_spatial_probe", "probe_hook", "Hypothesis", "causal_scrubbing",
    "Eigenfilters", "eigen_contributions", "eigenfilters", "input_patches", "interaction_matrix", "remove_components",
    "SAEConfig", "ablate_latents", "encode", "mmcs", "sae_metrics", "spatial_samples", "train_sae",
    "ablate", "edited", "mask_attention", "mean_difference", "run_edited", "steer", "steer_at",
]
