//! A `drflow schedule` cron expression as an EventBridge Scheduler `cron(...)` expression: six fields
//! (minutes hours day-of-month month day-of-week year), one of the two day fields `?`, days of the week numbered
//! 1-7 from Sunday (cron's 0-6, 7 also Sunday), no seconds.

/// The EventBridge form of a 5-field cron expression (or 6 with seconds `0`, or `@hourly`...), or why not.
pub fn eventbridge(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let fields: Vec<&str> = match expr {
        "@hourly" => vec!["0", "*", "*", "*", "*"],
        "@daily" | "@midnight" => vec!["0", "0", "*", "*", "*"],
        "@weekly" => vec!["0", "0", "*", "*", "0"],
        "@monthly" => vec!["0", "0", "1", "*", "*"],
        "@yearly" | "@annually" => vec!["0", "0", "1", "1", "*"],
        _ => expr.split_whitespace().collect(),
    };
    let fields = match fields.as_slice() {
        [_, _, _, _, _] => fields,
        ["0", rest @ ..] if rest.len() == 5 => rest.to_vec(),
        [_, _, _, _, _, _] => {
            return Err(format!(
                "`{expr}`: EventBridge Scheduler fires on whole minutes, not seconds"
            ));
        }
        _ => return Err(format!("`{expr}` is not a 5-field cron expression")),
    };
    let (m, h, dom, mon, dow) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
    let (dom, dow) = match (dom, dow) {
        (d, "*") => (d.to_string(), "?".to_string()),
        ("*", w) => ("?".to_string(), weekdays(w)?),
        _ => {
            return Err(format!(
                "`{expr}` restricts both the day of the month and the day of the week: EventBridge takes one of them"
            ));
        }
    };
    Ok(format!("cron({m} {h} {dom} {mon} {dow} *)"))
}

/// Day-of-week numbers from cron's (0-7, Sunday 0 or 7) to EventBridge's (1-7, Sunday 1); names stay.
fn weekdays(field: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut num = String::new();
    let flush = |num: &mut String, out: &mut String| -> Result<(), String> {
        if !num.is_empty() {
            let n: u32 = num.parse().map_err(|_| format!("`{num}` is not a day of the week"))?;
            if n > 7 {
                return Err(format!("`{n}` is not a day of the week"));
            }
            out.push_str(&(n % 7 + 1).to_string());
            num.clear();
        }
        Ok(())
    };
    for (i, c) in field.char_indices() {
        // A step (`*/2`) is a count, not a day.
        if c.is_ascii_digit() && !field[..i].ends_with('/') && !(num.is_empty() && field[..i].contains('/')) {
            num.push(c);
        } else {
            flush(&mut num, &mut out)?;
            out.push(c);
        }
    }
    flush(&mut num, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drflow_crons_become_eventbridge_crons() {
        assert_eq!(eventbridge("20 * * * *").unwrap(), "cron(20 * * * ? *)");
        assert_eq!(eventbridge("0 3 * * 1-5").unwrap(), "cron(0 3 ? * 2-6 *)");
        assert_eq!(eventbridge("0 3 * * 0,6").unwrap(), "cron(0 3 ? * 1,7 *)");
        assert_eq!(eventbridge("0 3 * * MON-FRI").unwrap(), "cron(0 3 ? * MON-FRI *)");
        assert_eq!(eventbridge("0 0 1 * * *").unwrap(), "cron(0 1 * * ? *)");
        assert_eq!(eventbridge("@daily").unwrap(), "cron(0 0 * * ? *)");
        assert_eq!(eventbridge("0 4 1 * *").unwrap(), "cron(0 4 1 * ? *)");
        assert!(eventbridge("0 4 1 * 1").is_err());
        assert!(eventbridge("30 0 4 * * *").is_err());
    }
}
