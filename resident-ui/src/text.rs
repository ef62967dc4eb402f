//! Every word the resident site shows, in ja / en / zh-Hans / pt. A typed table rather than Fluent
//! files: a missing translation does not compile, and the strings are plain, short and few.

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use platform::i18n::{Lang, pick};

#[derive(Debug, Clone, Copy)]
pub enum T {
    SiteTitle,
    LoginTitle,
    LoginIntro,
    Ticket,
    TicketHint,
    BirthDate,
    BirthDateHint,
    Phone,
    PhoneHint,
    SendCode,
    CodeTitle,
    CodeSentTo,
    Code,
    LogIn,
    AskAgain,
    MyBookings,
    NoBookings,
    BookNew,
    Change,
    Cancel,
    Cancelled,
    ChooseVenue,
    ChooseDay,
    ChooseTime,
    ConfirmTitle,
    Dose,
    Companions,
    CompanionsHint,
    ConfirmBook,
    ConfirmChange,
    DoneTitle,
    DoneText,
    ChangedText,
    CancelTitle,
    CancelQuestion,
    CancelYes,
    CancelledText,
    Back,
    LogOut,
    Language,
    Venue,
    Vaccine,
    When,
    ChangeUntil,
    NoSlots,
    FreeSeats,
    SessionExpired,
    FormExpired,
    NotFound,
    Person,
}

pub fn t(lang: Lang, key: T) -> &'static str {
    use T::*;
    match key {
        SiteTitle => pick(
            lang,
            "ワクチン接種予約",
            "Vaccination booking",
            "疫苗接种预约",
            "Reserva de vacinação",
        ),
        LoginTitle => pick(lang, "ログイン", "Log in", "登录", "Entrar"),
        LoginIntro => pick(
            lang,
            "接種券に書いてある番号と、生年月日を入力してください。",
            "Enter the number on your vaccination ticket and your date of birth.",
            "请输入接种券上的号码和您的出生日期。",
            "Digite o número do seu cupom de vacinação e sua data de nascimento.",
        ),
        Ticket => pick(
            lang,
            "接種券番号（10桁）",
            "Ticket number (10 digits)",
            "接种券号码（10位）",
            "Número do cupom (10 dígitos)",
        ),
        TicketHint => pick(
            lang,
            "例: 1000000001",
            "e.g. 1000000001",
            "例如 1000000001",
            "ex.: 1000000001",
        ),
        BirthDate => pick(
            lang,
            "生年月日",
            "Date of birth",
            "出生日期",
            "Data de nascimento",
        ),
        BirthDateHint => pick(
            lang,
            "例: 1980-04-01",
            "e.g. 1980-04-01",
            "例如 1980-04-01",
            "ex.: 1980-04-01",
        ),
        Phone => pick(
            lang,
            "携帯電話番号（初めての方のみ）",
            "Mobile number (first time only)",
            "手机号码（仅首次）",
            "Celular (só na primeira vez)",
        ),
        PhoneHint => pick(
            lang,
            "例: 09012345678",
            "e.g. 09012345678",
            "例如 09012345678",
            "ex.: 09012345678",
        ),
        SendCode => pick(
            lang,
            "認証コードを受け取る",
            "Send me a code",
            "获取验证码",
            "Receber código",
        ),
        CodeTitle => pick(
            lang,
            "認証コードの入力",
            "Enter your code",
            "输入验证码",
            "Digite o código",
        ),
        CodeSentTo => pick(
            lang,
            "SMSで6桁のコードを送りました。送信先:",
            "We sent a 6-digit code by text message to",
            "已通过短信发送6位验证码至",
            "Enviamos um código de 6 dígitos por SMS para",
        ),
        Code => pick(
            lang,
            "認証コード（6桁）",
            "Code (6 digits)",
            "验证码（6位）",
            "Código (6 dígitos)",
        ),
        LogIn => pick(lang, "ログインする", "Log in", "登录", "Entrar"),
        AskAgain => pick(
            lang,
            "コードをもう一度受け取る",
            "Get a new code",
            "重新获取验证码",
            "Receber novo código",
        ),
        MyBookings => pick(
            lang,
            "わたしの予約",
            "My bookings",
            "我的预约",
            "Minhas reservas",
        ),
        NoBookings => pick(
            lang,
            "予約はまだありません。",
            "You have no bookings yet.",
            "您还没有预约。",
            "Você ainda não tem reservas.",
        ),
        BookNew => pick(
            lang,
            "新しく予約する",
            "Make a booking",
            "新建预约",
            "Fazer uma reserva",
        ),
        Change => pick(
            lang,
            "日時を変更",
            "Change time",
            "更改时间",
            "Alterar horário",
        ),
        Cancel => pick(lang, "キャンセル", "Cancel", "取消", "Cancelar"),
        Cancelled => pick(lang, "キャンセル済み", "Cancelled", "已取消", "Cancelada"),
        ChooseVenue => pick(
            lang,
            "会場を選んでください",
            "Choose a venue",
            "请选择接种点",
            "Escolha o local",
        ),
        ChooseDay => pick(
            lang,
            "日にちを選んでください",
            "Choose a day",
            "请选择日期",
            "Escolha o dia",
        ),
        ChooseTime => pick(
            lang,
            "時間を選んでください",
            "Choose a time",
            "请选择时间",
            "Escolha o horário",
        ),
        ConfirmTitle => pick(
            lang,
            "予約内容の確認",
            "Check your booking",
            "确认预约内容",
            "Confira sua reserva",
        ),
        Dose => pick(lang, "接種回", "Dose", "剂次", "Dose"),
        Companions => pick(
            lang,
            "一緒に予約する人（任意）",
            "Book for others too (optional)",
            "同时为他人预约（可选）",
            "Reservar para outras pessoas (opcional)",
        ),
        CompanionsHint => pick(
            lang,
            "家族などの接種券番号と生年月日を入力すると、同じ時間に全員分を予約します（全員分が取れない場合は予約しません）。",
            "Enter each person's ticket number and date of birth. Everyone gets the same time, or nobody is booked.",
            "输入每个人的接种券号码和出生日期。所有人预约同一时间，无法全部预约时不会预约。",
            "Digite o número do cupom e a data de nascimento de cada pessoa. Todos ficam no mesmo horário, ou ninguém é reservado.",
        ),
        ConfirmBook => pick(
            lang,
            "この内容で予約する",
            "Book this time",
            "确认预约",
            "Reservar este horário",
        ),
        ConfirmChange => pick(
            lang,
            "この時間に変更する",
            "Change to this time",
            "改为此时间",
            "Mudar para este horário",
        ),
        DoneTitle => pick(
            lang,
            "予約が完了しました",
            "You are booked",
            "预约成功",
            "Reserva feita",
        ),
        DoneText => pick(
            lang,
            "確認のSMSを送ります。",
            "We will send you a confirmation text.",
            "我们将发送确认短信。",
            "Enviaremos um SMS de confirmação.",
        ),
        ChangedText => pick(
            lang,
            "予約を変更しました。",
            "Your booking was changed.",
            "预约已更改。",
            "Sua reserva foi alterada.",
        ),
        CancelTitle => pick(
            lang,
            "予約のキャンセル",
            "Cancel booking",
            "取消预约",
            "Cancelar reserva",
        ),
        CancelQuestion => pick(
            lang,
            "この予約をキャンセルしますか？",
            "Cancel this booking?",
            "确定取消此预约吗？",
            "Cancelar esta reserva?",
        ),
        CancelYes => pick(
            lang,
            "キャンセルする",
            "Yes, cancel it",
            "确定取消",
            "Sim, cancelar",
        ),
        CancelledText => pick(
            lang,
            "予約をキャンセルしました。",
            "Your booking was cancelled.",
            "预约已取消。",
            "Sua reserva foi cancelada.",
        ),
        Back => pick(lang, "戻る", "Back", "返回", "Voltar"),
        LogOut => pick(lang, "ログアウト", "Log out", "退出", "Sair"),
        Language => pick(lang, "言語", "Language", "语言", "Idioma"),
        Venue => pick(lang, "会場", "Venue", "接种点", "Local"),
        Vaccine => pick(lang, "ワクチン", "Vaccine", "疫苗", "Vacina"),
        When => pick(lang, "日時", "Date and time", "日期时间", "Data e hora"),
        ChangeUntil => pick(
            lang,
            "変更・キャンセル期限",
            "Change or cancel until",
            "更改或取消截止",
            "Alterar ou cancelar até",
        ),
        NoSlots => pick(
            lang,
            "予約できる時間がありません。",
            "No times can be booked.",
            "没有可预约的时间。",
            "Não há horários disponíveis.",
        ),
        FreeSeats => pick(lang, "空き", "free", "空位", "vagas"),
        SessionExpired => pick(
            lang,
            "もう一度ログインしてください。",
            "Please log in again.",
            "请重新登录。",
            "Entre novamente.",
        ),
        FormExpired => pick(
            lang,
            "画面の有効期限が切れました。もう一度お試しください。",
            "This page has expired. Please try again.",
            "页面已过期，请重试。",
            "Esta página expirou. Tente novamente.",
        ),
        NotFound => pick(
            lang,
            "ページが見つかりません。",
            "Page not found.",
            "找不到页面。",
            "Página não encontrada.",
        ),
        Person => pick(lang, "人目", "Person", "第几人", "Pessoa"),
    }
}

fn weekday(lang: Lang, d: Weekday) -> &'static str {
    let i = d.num_days_from_monday() as usize;
    match lang {
        Lang::Ja => ["月", "火", "水", "木", "金", "土", "日"][i],
        Lang::En => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][i],
        Lang::ZhHans => ["周一", "周二", "周三", "周四", "周五", "周六", "周日"][i],
        Lang::Pt => ["seg", "ter", "qua", "qui", "sex", "sáb", "dom"][i],
    }
}

/// A day as people write it in each language.
pub fn date(lang: Lang, d: NaiveDate) -> String {
    let w = weekday(lang, d.weekday());
    match lang {
        Lang::Ja => format!("{}月{}日({w})", d.month(), d.day()),
        Lang::En => format!("{w} {} {}", d.day(), d.format("%b")),
        Lang::ZhHans => format!("{}月{}日 {w}", d.month(), d.day()),
        Lang::Pt => format!("{w} {:02}/{:02}", d.day(), d.month()),
    }
}

/// Date and time in the city's time zone.
pub fn when(lang: Lang, tz: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    format!(
        "{} {}",
        date(lang, local.date_naive()),
        local.format("%H:%M")
    )
}
