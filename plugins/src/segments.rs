//! SMS segment counting, which is what gateways bill: GSM-7 text fits 160 characters in one segment
//! and 153 per segment when concatenated; anything else (Japanese) is UCS-2: 70, then 67 per segment.

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM-7 extension table; each takes two septets.
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// Number of segments a gateway will bill for `text`.
pub fn sms_segments(text: &str) -> u32 {
    let gsm_septets: Option<u32> = text.chars().try_fold(0u32, |n, c| {
        if GSM7_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM7_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (units, single, multi) = match gsm_septets {
        Some(septets) => (septets, 160, 153),
        // UCS-2 counts UTF-16 code units (characters outside the BMP take two)
        None => (text.encode_utf16().count() as u32, 70, 67),
    };
    // an empty message is still one (billed) segment
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::sms_segments;

    #[test]
    fn japanese_uses_ucs2_limits() {
        assert_eq!(sms_segments(&"予".repeat(70)), 1);
        assert_eq!(sms_segments(&"予".repeat(71)), 2);
        assert_eq!(sms_segments(&"予".repeat(100)), 2);
        assert_eq!(sms_segments(&"予".repeat(134)), 2);
        assert_eq!(sms_segments(&"予".repeat(135)), 3);
    }

    #[test]
    fn plain_ascii_uses_gsm7_limits() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"a".repeat(307)), 3);
        // extension characters count double
        assert_eq!(sms_segments(&"€".repeat(80)), 1);
        assert_eq!(sms_segments(&"€".repeat(81)), 2);
    }

    #[test]
    fn one_japanese_character_makes_the_whole_message_ucs2() {
        assert_eq!(sms_segments(&format!("{}予", "a".repeat(70))), 2);
    }
}
