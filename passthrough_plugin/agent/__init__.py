"""Host side: discovery, VF setup, binders, privsep, doctor, service loop."""
