"""Alerts: `email.py` builds the weekly digest and delivers it (SMTP or an .eml file).

Import the submodules directly (`from monitor.alerts.email import build_digest, deliver`),
so that code which only plans alerts does not load smtplib.
"""
