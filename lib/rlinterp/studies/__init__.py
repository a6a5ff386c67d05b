"""One module per study: the analysis functions its chapters, ``rli bench``, ``rli play`` and the explorer call.

``coinflip`` (+ ``coinflip_bayes``: the game's exact Bayes-optimal solution, baselines and exact/Monte Carlo
evaluation) · ``highway`` (+ ``highway_plots``) · ``ad``.
"""
