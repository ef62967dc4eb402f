//! The optional pre-vaccination questionnaire on the booking confirm page (issue 6): underlying
//! conditions, allergies and a history of anaphylaxis. Handed to the resident desk with the
//! booking, which saves it in the booking's own transaction (both or neither); the venue's staff
//! see flags on their intake list.

use maud::{Markup, html};
use platform::i18n::{Lang, pick};

/// The questionnaire's fields of the booking form (all optional).
#[derive(Default, Clone, Debug)]
pub struct Fields {
    pub hq_conditions: String,
    pub hq_allergies: String,
    pub hq_anaphylaxis: String,
}

impl Fields {
    pub fn answers(&self) -> platform::intake::Answers {
        platform::intake::Answers {
            conditions: self.hq_conditions.clone(),
            allergies: self.hq_allergies.clone(),
            anaphylaxis: !self.hq_anaphylaxis.trim().is_empty(),
        }
    }
}

/// The fieldset inside the confirm form, folded away unless something was entered.
pub fn markup(lang: Lang, f: &Fields) -> Markup {
    let filled = !f.answers().is_empty();
    html! {
        details id="questionnaire" open[filled] {
            summary {
                (pick(lang, "予診票（任意）", "Health questionnaire (optional)", "预诊问卷（可选）", "Questionário de saúde (opcional)"))
            }
            p class="small" {
                (pick(lang,
                    "接種会場の医師・看護師が確認します。当日、会場でも伺います。",
                    "The doctor and nurses at the venue will read this. You will also be asked on the day.",
                    "接种点的医生和护士会查看。当天在接种点也会询问。",
                    "O médico e os enfermeiros do local vão ler isto. Também perguntaremos no dia."))
            }
            label for="hq_conditions" {
                (pick(lang, "治療中の病気・基礎疾患", "Illnesses under treatment / underlying conditions", "正在治疗的疾病・基础疾病", "Doenças em tratamento / condições de saúde"))
            }
            textarea id="hq_conditions" name="hq_conditions" rows="2" maxlength="1000" { (f.hq_conditions) }
            label for="hq_allergies" {
                (pick(lang, "アレルギー（薬・食べ物など）", "Allergies (medicines, food, …)", "过敏（药物、食物等）", "Alergias (medicamentos, alimentos, …)"))
            }
            textarea id="hq_allergies" name="hq_allergies" rows="2" maxlength="1000" { (f.hq_allergies) }
            label class="radio" {
                input type="checkbox" id="hq_anaphylaxis" name="hq_anaphylaxis" value="1" checked[!f.hq_anaphylaxis.trim().is_empty()];
                " " (pick(lang, "以前に重いアレルギー反応（アナフィラキシー）を起こしたことがある", "I have had a severe allergic reaction (anaphylaxis) before", "以前曾发生过严重过敏反应（过敏性休克）", "Já tive uma reação alérgica grave (anafilaxia)"))
            }
        }
    }
}
