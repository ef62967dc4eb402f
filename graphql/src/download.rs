//! `GET /graphql/exports/{city}/{id}`: an export's file for an API key (the `downloadUrl` of
//! `city { export }`). The key is checked and charged like a GraphQL request (expired: 401,
//! over budget: 429), then the same guard and platform function as the admin UI's download
//! (`platform::exports::open_download`: the job must be done and not expired; the download is
//! audited and committed before the first byte is sent), then the file is streamed chunk by chunk.
//! Staff sessions download from the admin UI (`/admin/t/{slug}/exports/{id}/download`): a link
//! must not ride the session cookie here (docs/api.md, cross-site requests).

use std::net::SocketAddr;

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::exports::{self, ExportJobError};
use platform::staff::authz::{Act, Authz, Denied, Object};
use uuid::Uuid;

use crate::protocol::Media;
use crate::web::{Api, admit_key, is_api_key, lang_and_bearer};

/// The path of an export's file (relative to the server).
pub fn export_path(city: &str, id: Uuid) -> String {
    format!("/graphql/exports/{city}/{id}")
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "NOT_FOUND", "export not found")
}

pub(crate) async fn export_file(
    State(api): State<Api>,
    Path((city, id)): Path<(String, String)>,
    headers: HeaderMap,
    client: Option<Extension<platform::ClientIp>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let (_, bearer) = lang_and_bearer(&headers);
    let ip = client
        .map(|c| c.0.to_string())
        .or_else(|| connect.map(|c| c.0.0.ip().to_string()));
    let unauthenticated = || {
        refuse(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "send the API key that may read exports: Authorization: Bearer yk_…",
        )
    };
    let Some(key) = bearer.filter(|b| is_api_key(Some(b))) else {
        return unauthenticated();
    };
    let holder = match admit_key(&api, &key, ip, Media::Json).await {
        Ok(Some(h)) => h,
        Ok(None) => return unauthenticated(),
        Err(refused) => return refused,
    };
    let (Some(pool), Some(authz)) = (
        api.schema.data::<sqlx::PgPool>(),
        api.schema.data::<Authz>(),
    ) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found();
    };
    let tenant = match tenants::find_by_slug(pool, &city).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "export download: finding the city failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut scope = match authz
        .enter(&holder.actor, tenant.id, Object::Exports, Act::Read)
        .await
    {
        Ok(s) => s,
        Err(Denied::NotFound) => return not_found(),
        Err(Denied::Forbidden) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "this API key's scopes do not allow reading exports (exports:read)",
            );
        }
        Err(Denied::Suspended) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                platform::staff::authz::SUSPENDED_MESSAGE.1,
            );
        }
        Err(Denied::Database(e)) => {
            tracing::error!(error = %e, "export download: the guard failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let d = match exports::open_download(&mut scope, id).await {
        Ok(d) => d,
        Err(ExportJobError::NotFound) => return not_found(),
        Err(ExportJobError::Expired) => {
            return refuse(
                StatusCode::GONE,
                "NOT_FOUND",
                "this export has expired and its file was deleted; start it again",
            );
        }
        Err(ExportJobError::NotReady) => {
            return refuse(
                StatusCode::CONFLICT,
                "CONFLICT",
                "this export is not ready yet; poll city { export(id:) } until it is DONE",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "export download failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // the audit entry commits before a byte leaves
    if let Err(e) = scope.commit().await {
        tracing::error!(error = %e, "export download: commit failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let stream = exports::chunks(pool.clone(), &d);
    (
        [
            (header::CONTENT_TYPE, d.content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", d.file_name),
            ),
            (header::CONTENT_LENGTH, d.byte_size.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
