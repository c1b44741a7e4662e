"""Auth hook for the modelapi test LiteLLM proxy (general_settings.custom_auth).

Accepts exactly one key, the proxy master key (config.yaml reads it from the
env var LITELLM_MASTER_KEY; start.sh sets that, default
"sk-modelapi-test-master"). Anything else gets HTTP 401.

Why this exists: LiteLLM 1.108.7 strips a client-sent ``mock_response`` from
the request body unless the caller's key (or team) metadata carries
``allow_client_mock_response: true``. Key metadata normally lives in a
database; this hook hands out an identity with that flag set instead, so the
tests can ask for canned replies per request without any DB.
"""

import hmac
import os

from fastapi import HTTPException, Request, status

from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

DEFAULT_MASTER_KEY = "sk-modelapi-test-master"


def _expected_key() -> str:
    try:  # the value the proxy itself resolved from general_settings.master_key
        from litellm.proxy.proxy_server import master_key

        if isinstance(master_key, str) and master_key:
            return master_key
    except Exception:  # pragma: no cover - defensive
        pass
    return os.environ.get("LITELLM_MASTER_KEY") or DEFAULT_MASTER_KEY


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    # LiteLLM has already taken the token out of "Authorization: Bearer <key>"
    # (or x-litellm-api-key); an absent/garbled header arrives as "".
    key = (api_key or "").strip()
    if key.lower().startswith("bearer "):
        key = key[len("bearer ") :].strip()
    if not key:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="modelapi test proxy: missing API key; send 'Authorization: Bearer <master key>'",
        )
    if not hmac.compare_digest(key.encode(), _expected_key().encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="modelapi test proxy: invalid API key; only the proxy master key is accepted",
        )
    return UserAPIKeyAuth(
        api_key=key,
        user_id="modelapi-test",
        user_role=LitellmUserRoles.PROXY_ADMIN,
        metadata={"allow_client_mock_response": True},
    )
