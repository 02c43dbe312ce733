"""The HTTP API of the alert service, one router per resource (wired by ``anjian.service.app.create_app``)."""
