//! A city's eligible residents: the CSV import (`/admin/t/{slug}/import`) and the lookup by ticket
//! number (`/admin/t/{slug}/residents`).

use axum::{
    extract::{Multipart, Path, Query, State},
    response::Response,
};
use maud::{Markup, html};
use platform::city::setup::{self, SetupError};
use platform::residents::import;
use platform::residents::import_runs::{self, ImportStatus, RunError};
use platform::staff::authz::{Act, Object};
use serde::Deserialize;
use tenants::Tenant;

use crate::i18n::{K, Lang, field_label};
use crate::page::{PageError, Staff, csrf_field};
use crate::shell::{enter, render, unprocessable};
use crate::state::AdminState;

fn import_form(staff: &Staff, t: &Tenant) -> Markup {
    let lang = staff.lang;
    html! {
        p { "ticket_no, birth_date, kana_name, sex, phone, email, postal_code, preferred_language" }
        form method="post" action={"/admin/t/" (t.slug) "/import"} enctype="multipart/form-data" id="import" {
            (csrf_field(staff))
            label { (lang.t(K::File)) br; input type="file" name="file" accept=".csv,text/csv" required; }
            label { input type="checkbox" name="import_valid_rows" value="1"; " " (lang.t(K::ImportValidRows)) }
            button type="submit" { (lang.t(K::DoImport)) }
        }
    }
}

pub async fn import_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (t, scope) = enter(&state, &staff, &slug, Object::Imports, Act::Write).await?;
    drop(scope);
    Ok(render(
        &staff,
        &t,
        staff.lang.t(K::Import),
        import_form(&staff, &t),
    ))
}

pub async fn import_upload(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (mut bytes, mut filename, mut valid_only) = (Vec::new(), String::new(), false);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| PageError::bad_request(e.to_string(), lang))?
    {
        match field.name() {
            Some("import_valid_rows") => valid_only = true,
            Some("file") => {
                filename = field.file_name().unwrap_or("upload.csv").to_owned();
                bytes = field
                    .bytes()
                    .await
                    .map_err(|e| PageError::bad_request(e.to_string(), lang))?
                    .to_vec();
            }
            _ => {}
        }
    }
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Imports, Act::Write).await?;
    // the same platform function as GraphQL's startResidentImport: parse, import, record
    match import_runs::run(&mut scope, &bytes, valid_only, &filename).await {
        Ok(run) if run.status == ImportStatus::Completed => {
            scope.commit().await?;
            let body = html! {
                p.ok #import-result {
                    (lang.t(K::Imported)) ": " (run.inserted) " new, " (run.updated) " updated, "
                    (run.unchanged) " unchanged, " (run.skipped_invalid) " skipped"
                }
                @if !run.errors.is_empty() { (error_table(lang, &run.errors)) }
                (import_form(&staff, &t))
            };
            Ok(render(&staff, &t, lang.t(K::Import), body))
        }
        Ok(run) => {
            // rejected: nothing imported, only the record of the attempt
            scope.commit().await?;
            let body = html! {
                p.error role="alert" #import-result { (lang.t(K::NothingImported)) " (" (run.errors.len()) ")" }
                (error_table(lang, &run.errors))
                (import_form(&staff, &t))
            };
            Ok(unprocessable(&staff, &t, lang.t(K::Import), body))
        }
        Err(RunError::Database(e)) => Err(e.into()),
        Err(e) => {
            let body = html! { p.error role="alert" { (e.to_string()) } (import_form(&staff, &t)) };
            Ok(unprocessable(&staff, &t, lang.t(K::Import), body))
        }
    }
}

fn error_table(lang: Lang, errors: &[import::RowError]) -> Markup {
    html! {
        table #import-errors {
            tr { th { (lang.t(K::Line)) } th { (lang.t(K::Column)) } th { (lang.t(K::Reason)) } }
            @for e in errors { tr { td { (e.line) } td { (e.column) } td { (e.reason) } } }
        }
    }
}

#[derive(Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    ticket: String,
}

pub async fn residents(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<LookupQuery>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Residents, Act::Read).await?;
    let found = if q.ticket.trim().is_empty() {
        None
    } else {
        match setup::resident_by_ticket(&mut scope, &q.ticket).await {
            Ok(r) => Some(Ok(r)),
            Err(SetupError::Invalid { field, reason }) => {
                Some(Err(format!("{}: {reason}", field_label(lang, field))))
            }
            Err(SetupError::Database(e)) => return Err(e.into()),
            Err(SetupError::NotFound | SetupError::Conflict(_)) => Some(Ok(None)),
        }
    };
    scope.commit().await?;
    let refused = matches!(found, Some(Err(_)));
    let body = html! {
        form method="get" action={"/admin/t/" (t.slug) "/residents"} {
            label { (lang.t(K::TicketNo)) br; input name="ticket" value=(q.ticket) inputmode="numeric"; }
            button type="submit" { (lang.t(K::Search)) }
        }
        @match found {
            Some(Err(message)) => p.error role="alert" { (message) },
            Some(Ok(Some(r))) => {
                dl #resident {
                    dt { (lang.t(K::TicketNo)) } dd { (r.ticket_no) }
                    dt { "カナ氏名 / name" } dd { (r.kana_name) }
                    dt { "生年月日 / birth date" } dd { (r.birth_date) }
                    dt { "性別 / sex" } dd { (r.sex) }
                    dt { "電話 / phone" } dd { (r.phone.unwrap_or_default()) }
                    dt { (lang.t(K::Email)) } dd { (r.email.unwrap_or_default()) }
                    dt { "〒" } dd { (r.postal_code.unwrap_or_default()) }
                }
            }
            Some(Ok(None)) => p { (lang.t(K::NoResident)) },
            None => {}
        }
    };
    if refused {
        return Ok(unprocessable(&staff, &t, lang.t(K::Lookup), body));
    }
    Ok(render(&staff, &t, lang.t(K::Lookup), body))
}
