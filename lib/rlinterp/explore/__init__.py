"""Interactive explorers (local Streamlit apps) for the shipped models.

- :mod:`rlinterp.explore.ad`: build or edit a Dark Room context for the Algorithm Distillation transformer and watch
  its action probabilities, attention patterns and probe readouts (``streamlit run lib/rlinterp/explore/ad.py``).

Each app keeps its computation in plain functions (importable and testable without Streamlit); Streamlit is imported
only inside the app's ``main()``.
"""
