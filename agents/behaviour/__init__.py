"""Dataset generation: the behaviour-policy learner (SAC), the D4RL-style recipes and the shipped policies.

``envs.collect`` rolls a policy out and writes the Minari dataset; the recipes here choose which policy and how
many steps. The Decision agents never import this package: they read a dataset's provenance through
``envs.provenance``.
"""
