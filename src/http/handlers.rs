//! Handlers: one function per [`Endpoint`], dispatched here. A handler only translates:
//! it parses the request into a service's typed request, calls the service (which runs
//! the flow and audits inside), and maps the typed outcome to a response; every error
//! leaves with `?` and becomes a problem in [`super::problem`].
//!
//! * [`tus`] — the upload endpoints over [`crate::upload::Uploads`], and CORS;
//! * [`download`] — `/d/…` over [`crate::links::Links::download`];
//! * [`links`] — the links API over [`crate::links::Links`] (issue, list, show, revoke);
//! * [`artifacts`] — artifact registration and lookup over [`crate::links::Links`];
//! * [`smart`] — SMART Backend Services discovery and token endpoint over
//!   [`crate::smart::Smart`];
//! * [`bulk`] — FHIR Bulk Data `$export`, status, cancel and publishing over
//!   [`crate::bulk::Bulk`];
//! * [`invitations`] — upload invitations, the issuer's and the holder's side, over
//!   [`crate::invite::Invitations`];
//! * [`ops`] — health, readiness, metrics, `whoami`, audit verification;
//! * [`page`] — the clinic upload page and its files (public, static);
//! * [`audit`] — audit queries and traces over [`crate::audit::search::AuditSearch`];
//! * [`respond`] — the helpers they share (JSON bodies in and out, `Content-Length`).

use http::{Request, Response};

use super::AppState;
use super::context::RequestContext;
use super::endpoint::Endpoint;
use super::problem::ApiError;

pub mod artifacts;
pub mod audit;
pub mod batches;
pub mod bulk;
pub mod download;
pub mod invitations;
pub mod links;
pub mod ops;
pub mod page;
pub mod respond;
pub mod smart;
pub mod tus;

pub use respond::content_length;

/// Calls the handler for `ctx.endpoint`.
pub async fn dispatch(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    match ctx.endpoint {
        Endpoint::Healthz => Ok(ops::healthz(&req)),
        Endpoint::Readyz => Ok(ops::readyz(state, req.method() == http::Method::HEAD).await),
        Endpoint::Metrics => ops::metrics(state, ctx, req).await,
        Endpoint::WhoAmI => ops::whoami(state, ctx, req),
        Endpoint::AuditVerify => ops::audit_verify(state, ctx, req).await,
        Endpoint::AuditEvents => audit::events(state, ctx, req).await,
        Endpoint::AuditTrace(id) => audit::trace(state, ctx, req, id).await,
        Endpoint::TusOptions => Ok(tus::options(state, &req)),
        Endpoint::TusCreate => tus::create(state, ctx, req).await,
        Endpoint::TusPatch(id) => tus::patch(state, ctx, id, req).await,
        Endpoint::TusHead(id) => tus::head(state, ctx, id, req).await,
        Endpoint::TusDelete(id) => tus::delete(state, ctx, id, req).await,
        Endpoint::TusLedger(id) => tus::ledger(state, ctx, id, req).await,
        Endpoint::Download => download::serve(state, ctx, req).await,
        Endpoint::ArtifactCreate => artifacts::create(state, ctx, req).await,
        Endpoint::ArtifactGet(id) => artifacts::get(state, ctx, req, id).await,
        Endpoint::LinksIssue => links::issue(state, ctx, req).await,
        Endpoint::LinksList => links::list(state, ctx, req).await,
        Endpoint::LinkGet(id) => links::get(state, ctx, req, id).await,
        Endpoint::LinksRevokeBulk => links::revoke_bulk(state, ctx, req).await,
        Endpoint::LinkRevoke(id) => links::revoke(state, ctx, req, id).await,
        Endpoint::BatchOpen => batches::open(state, ctx, req).await,
        Endpoint::BatchList => batches::list(state, ctx, req).await,
        Endpoint::BatchGet(id) => batches::get(state, ctx, req, id).await,
        Endpoint::BatchDocument(id, kind) => batches::document(state, ctx, req, id, kind).await,
        Endpoint::BatchReport(id) => batches::report(state, ctx, req, id).await,
        Endpoint::BatchSeal(id) => batches::seal(state, ctx, req, id).await,
        Endpoint::BatchRelease(id) => batches::release(state, ctx, req, id).await,
        Endpoint::BatchPurge(id) => batches::purge(state, ctx, req, id).await,
        Endpoint::SmartConfiguration => smart::configuration(state),
        Endpoint::AuthToken => smart::token(state, ctx, req).await,
        Endpoint::ExportPublish => bulk::publish(state, ctx, req).await,
        Endpoint::ExportBuild => bulk::build(state, ctx, req).await,
        Endpoint::BulkKickoff(ref level) => bulk::kickoff(state, ctx, req, level.clone()).await,
        Endpoint::BulkStatus(job) => bulk::status(state, ctx, req, job).await,
        Endpoint::BulkCancel(job) => bulk::cancel(state, ctx, req, job).await,
        Endpoint::BulkFile(job, artifact) => bulk::file(state, ctx, req, job, artifact).await,
        Endpoint::InvitePage => Ok(page::index()),
        Endpoint::InviteAsset(asset) => Ok(page::asset(asset, &req)),
        Endpoint::InvitationIssue => invitations::issue(state, ctx, req).await,
        Endpoint::InvitationList => invitations::list(state, ctx, req).await,
        Endpoint::InvitationGet(id) => invitations::get(state, ctx, req, id).await,
        Endpoint::InvitationRevoke(id) => invitations::revoke(state, ctx, req, id).await,
        Endpoint::InvitationSelf => invitations::holder_view(state, ctx, req).await,
        Endpoint::InvitationSeal => invitations::holder_seal(state, ctx, req).await,
    }
}
