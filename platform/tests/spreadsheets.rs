//! Excel files are read back (calamine) and checked cell by cell; the sheet XML is checked for the
//! frozen header and the auto-filter.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::NaiveDate;
use platform::exports::spreadsheet::{Cell, Column, ColumnKind, XlsxExport, invoice_xlsx};

fn sheet_xml(bytes: &[u8], index: usize) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("xlsx is a zip");
    let mut xml = String::new();
    zip.by_name(&format!("xl/worksheets/sheet{index}.xml"))
        .expect("sheet xml")
        .read_to_string(&mut xml)
        .expect("read xml");
    xml
}

#[test]
fn a_booked_list_reads_back_with_real_dates_a_frozen_header_and_a_filter() {
    let columns = [
        Column::new("接種券番号", ColumnKind::Text),
        Column::new("氏名（カナ）", ColumnKind::Text),
        Column::new("生年月日", ColumnKind::Date),
        Column::new("予約日時", ColumnKind::DateTime),
        Column::new("回数", ColumnKind::Integer),
    ];
    let birth = NaiveDate::from_ymd_opt(1950, 4, 1).unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 12, 1)
        .unwrap()
        .and_hms_opt(10, 30, 0)
        .unwrap();
    let mut book = XlsxExport::new();
    let mut sheet = book.sheet("市民ホール 12月1日", &columns).unwrap();
    sheet
        .push(&[
            "0000000001".into(),
            "ヤマダ タロウ".into(),
            birth.into(),
            at.into(),
            1i64.into(),
        ])
        .unwrap();
    sheet
        .push(&[
            "0000000002".into(),
            "スズキ ハナコ".into(),
            birth.into(),
            at.into(),
            Cell::Empty,
        ])
        .unwrap();
    assert_eq!(sheet.finish().unwrap(), 2);
    let bytes = book.finish().unwrap();

    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.clone())).expect("open");
    assert_eq!(wb.sheet_names(), vec!["市民ホール 12月1日".to_owned()]);
    let range = wb.worksheet_range("市民ホール 12月1日").expect("sheet");
    assert_eq!(range.get_size(), (3, 5));
    assert_eq!(
        range.get((0, 1)),
        Some(&Data::String("氏名（カナ）".into()))
    );
    // leading zeros survive: ticket numbers are text
    assert_eq!(range.get((1, 0)), Some(&Data::String("0000000001".into())));
    match range.get((1, 2)) {
        Some(Data::DateTime(d)) => assert_eq!(d.as_datetime().unwrap().date(), birth),
        other => panic!("birth date should be an Excel date, got {other:?}"),
    }
    match range.get((1, 3)) {
        Some(Data::DateTime(d)) => assert_eq!(d.as_datetime().unwrap(), at),
        other => panic!("appointment should be an Excel date-time, got {other:?}"),
    }
    assert_eq!(range.get((1, 4)), Some(&Data::Float(1.0)));
    assert_eq!(range.get((2, 4)), Some(&Data::Empty));

    let xml = sheet_xml(&bytes, 1);
    assert!(
        xml.contains(r#"ySplit="1""#) && xml.contains(r#"state="frozen""#),
        "frozen header: {xml}"
    );
    assert!(
        xml.contains(r#"<autoFilter ref="A1:E3""#),
        "auto-filter over the data"
    );
}

#[test]
fn a_hundred_thousand_rows_stream_through_constant_memory() {
    let columns = [
        Column::new("接種券番号", ColumnKind::Text),
        Column::new("回数", ColumnKind::Integer),
    ];
    let mut book = XlsxExport::new();
    let mut sheet = book.sheet("対象者", &columns).unwrap();
    for n in 0..100_000i64 {
        sheet
            .push(&[format!("{:010}", n).into(), (n % 3).into()])
            .unwrap();
    }
    sheet.finish().unwrap();
    let bytes = book.finish().unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
    let range = wb.worksheet_range("対象者").expect("sheet");
    assert_eq!(range.get_size().0, 100_001);
    assert_eq!(
        range.get((100_000, 0)),
        Some(&Data::String("0000099999".into()))
    );
}

#[test]
fn rows_of_the_wrong_width_are_refused() {
    let mut book = XlsxExport::new();
    let mut sheet = book
        .sheet("x", &[Column::new("a", ColumnKind::Text)])
        .unwrap();
    assert!(sheet.push(&["a".into(), "b".into()]).is_err());
}

#[test]
fn an_invoice_reads_back_line_by_line_with_its_totals() {
    use tenants::billing::{Invoice, Line, Totals};
    let invoice = Invoice {
        id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        month: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        kind: "invoice".into(),
        status: "final".into(),
        number: Some("YYK-2026-000001".into()),
        corrects: None,
        totals: Totals {
            subtotal_yen: 104_806,
            tax_yen: 10_480,
            total_yen: 115_286,
        },
        grace_until: chrono::Utc::now(),
        issuer: None,
        issued_on: None,
        due_on: None,
        lines: vec![
            Line {
                description: "システム利用料（basic）".into(),
                quantity: 1,
                unit_price_yen: 100_000,
                amount_yen: 100_000,
            },
            Line {
                description: "SMS送信（通）".into(),
                quantity: 534,
                unit_price_yen: 9,
                amount_yen: 4_806,
            },
        ],
    };
    let bytes = invoice_xlsx(&invoice, "請求市").unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
    let range = wb.worksheet_range("請求書").expect("sheet");
    assert_eq!(
        range.get((1, 0)),
        Some(&Data::String("システム利用料（basic）".into()))
    );
    assert_eq!(range.get((2, 1)), Some(&Data::Float(534.0)));
    assert_eq!(range.get((2, 3)), Some(&Data::Float(4_806.0)));
    let row_of = |label: &str| {
        (0..range.height()).find(|r| range.get((*r, 0)) == Some(&Data::String(label.into())))
    };
    let total = row_of("合計").expect("total row");
    assert_eq!(range.get((total, 3)), Some(&Data::Float(115_286.0)));
    let number = row_of("番号").expect("number row");
    assert_eq!(
        range.get((number, 3)),
        Some(&Data::String("YYK-2026-000001".into()))
    );
}
