"""The Responses API's tool loop: code_interpreter and shell calls run in localbox's
containers while an upstream model drives them."""

from server.services.responses.request import AutoContainer, CreateResponse, SandboxTool
from server.services.responses.sandbox import SandboxServices
from server.services.responses.service import ResponseService
from server.services.responses.turn import TurnSettings

__all__ = [
    "AutoContainer",
    "CreateResponse",
    "ResponseService",
    "SandboxServices",
    "SandboxTool",
    "TurnSettings",
]
