"""Training algorithms, one file each (CleanRL style): ``dqn`` (coin-flip DQN), ``ddqn`` (highway Double DQN),
``ad`` (Algorithm/Expert Distillation training), ``sources`` (the Dark Room learners whose histories AD distils) and
``replay`` (the one replay buffer)."""
