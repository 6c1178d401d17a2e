"""The explorer: backpropagation in the browser, every number computed by both models.

`python -m demos.explore` serves a page with three parts: a worked example stepped phase by phase
(forward, loss, backward, update), each number with how it was made and autograd's value beside it;
a playground where a small network learns a 2-D problem, both models side by side; and an image tab
where a digits network classifies a drawn digit. The page computes nothing: it asks the server,
which answers in JSON. One module a concern:

    schemas     the limits and the request bodies (pydantic, as the configs)
    sessions    one session per page: bounded, one request at a time
    stepper     the worked example's runs: hand-written (the worked-example code) and autograd's own
    chain       each drawn element at one step: its numbers, the chain rule, autograd's values
    view        the answer for one step: the items by phase, the trace, the audited claims
    problems    the playground's problems (three kinds), input features, pasted CSV points
    playground  the pair of models trained frame by frame, its pictures, a point, the export
    images      the digits network of the image tab, and ∂L/∂pixel by both models
    app         the FastAPI app: the page, the endpoints, every error as one line
    static/     index.html, app.js, worked.js, playground.js, images.js, style.css: the page
                (works offline)
"""

from bpdemo.explore.app import SESSION_HEADER, create_app, serving, tcp_socket
from bpdemo.explore.stepper import WorkedStepper

__all__ = ["SESSION_HEADER", "WorkedStepper", "create_app", "serving", "tcp_socket"]
