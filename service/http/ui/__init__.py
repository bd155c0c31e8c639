"""The web UI, served by `tocsin serve` under /ui/: routes.py wires it (`add_ui(app)`, the CSP),
handlers.py reads and acts through the HTTP API's own code, views.py is the pure view logic, auth.py the
sessions, CSRF and origin checks, replay_view.py the replay page; templates/ and static/ ship in the package."""
