//! A city's SMS budget as two pages show it: the banner at 80 % or more (the city's start page and
//! the notifications page) and the one way to save it (the notifications page and the billing
//! page), over `platform::notifications::channels`.

use maud::{Markup, html};
use platform::notifications::channels::{self, BudgetLevel, BudgetStatus, SetBudgetError};
use platform::staff::authz::{Act, Denied, Object};
use tenants::Tenant;

use crate::format::thousands;
use crate::i18n::Lang;
use crate::page::{PageError, Staff};
use crate::shell::enter;
use crate::state::AdminState;

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

/// The banner for a budget at 80 % or more; none below.
pub(crate) fn budget_banner_markup(lang: Lang, status: &BudgetStatus) -> Option<Markup> {
    let budget = status.budget?;
    let detail = format!(
        "{} / {} ({} %)",
        thousands(status.used),
        thousands(budget),
        status.percent()
    );
    match status.level() {
        BudgetLevel::Fine => None,
        BudgetLevel::Alert => Some(html! {
            p.banner.warning #sms-budget-banner role="status" {
                (tr(lang, "今月のSMS予算の80%を使用しました", "80 % of this month's SMS budget used"))
                " – " (detail)
            }
        }),
        BudgetLevel::Reached => Some(html! {
            p.banner.error #sms-budget-banner role="alert" {
                (tr(lang, "SMS予算に達しました：お知らせは可能な場合メールで送られます",
                        "SMS budget reached: messages go by e-mail where possible"))
                " – " (detail)
            }
        }),
    }
}

/// The budget banner for the city's dashboard, for those who may see the notification settings.
pub(crate) async fn budget_banner(
    state: &AdminState,
    staff: &Staff,
    t: &Tenant,
) -> Result<Option<Markup>, PageError> {
    let allowed = state
        .authz
        .check(&staff.actor, t.id, Object::Notifications, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, staff.lang))?;
    if !allowed {
        return Ok(None);
    }
    let mut scope = match state
        .authz
        .enter(&staff.actor, t.id, Object::Notifications, Act::Read)
        .await
    {
        Ok(scope) => scope,
        Err(Denied::Database(e)) => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    let status =
        channels::sms_budget_status(&mut scope, t.time_zone.name(), chrono::Utc::now()).await?;
    scope.commit().await?;
    Ok(budget_banner_markup(staff.lang, &status))
}

/// The SMS budget form of either page (this one and the billing page): one entry, the platform's
/// one setter (its permission, parser and audit entry), one message. `Ok(Ok(()))`: saved and
/// committed; `Ok(Err(message))`: refused with the reason, nothing changed.
pub(crate) async fn save_budget(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    input: &str,
) -> Result<Result<(), String>, PageError> {
    let lang = staff.lang;
    let (_, mut scope) = enter(state, staff, slug, Object::Notifications, Act::Write).await?;
    match channels::set_sms_budget(&state.authz, &mut scope, input).await {
        Ok(_) => {
            scope.commit().await?;
            Ok(Ok(()))
        }
        Err(SetBudgetError::Invalid(e)) => Ok(Err(match lang {
            Lang::Ja => format!("SMS予算を保存できません：{}", e.ja()),
            Lang::En => format!("The SMS budget was not saved: {e}"),
        })),
        Err(SetBudgetError::Denied(d)) => Err(PageError::denied(d, lang)),
        Err(SetBudgetError::Database(e)) => Err(e.into()),
    }
}
