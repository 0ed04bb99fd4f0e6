"""Pure, Django-free rules shared by the data plane and the portal."""
