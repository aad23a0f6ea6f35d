"""Fault suite: what a careless sender, a faulty network, a dead worker or an attacker can do (issue 11)."""
