//! `Op::Newest` as states: the newest qualifying item of a paged listing found by a counted scan (ASL cannot sort):
//! each page's items taken one by one (`States.ArrayGetItem` at a counter raised by `States.MathAdd`), a Choice
//! keeping the item when it qualifies and is newer (`TimestampGreaterThanPath`) than the best so far, the next page
//! asked for with the answer's `NextToken`. The pages are bounded (the step fails with `TooManyItems` past them) so
//! the scan's history is too: 8 events an item at most (the item, the check, the keep, the count check), 15 a page.

use serde_json::{Value, json};

use super::StepCx;
use crate::actions::sfn::{Arg, Newest};
use crate::export::build::{Builder, Chain};
use crate::export::expr::{Rule, dot};

/// Items of a page when the call names no literal `MaxResults` (AWS's usual most).
const DEFAULT_PAGE: usize = 1000;

impl Builder<'_> {
    pub(crate) fn newest(
        &mut self,
        cx: &mut StepCx<'_>,
        n: &Newest,
        next: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        let root = cx.root();
        let own = dot(&root, n.id);
        let scan = dot(&own, "scan");
        let answer = dot(&dot(&root, n.call.id), "r");
        let list = dot(&answer, n.items);
        let token = dot(&answer, "NextToken");
        let at = |f: &str| dot(&scan, f);

        let init = cx.name(&format!("{} start", n.id));
        let has = cx.name(&format!("{} any?", n.id));
        let page = cx.name(&format!("{} items", n.id));
        let test = cx.name(&format!("{} more items?", n.id));
        let item = cx.name(&format!("{} item", n.id));
        let keep = cx.name(&format!("{} newer?", n.id));
        let take = cx.name(&format!("{} keep", n.id));
        let more = cx.name(&format!("{} more pages?", n.id));
        let count = cx.name(&format!("{} next page", n.id));
        let too_many = cx.name(&format!("{} too many", n.id));

        let first = self.call(cx, &n.call, &has, states)?;
        let paged = n.call.clone().with("NextToken", Arg::Answer(n.call.id, "NextToken"));
        let again = self.call(cx, &paged, &has, states)?;
        states.add(
            &init,
            json!({"Type": "Pass", "Result": {"scan": {"i": 0, "n": 0, "pages": 1, "count": 0}},
                   "ResultPath": own, "Next": first}),
        );

        // An answer without the list (an empty listing may leave it out) is an empty page.
        states.add(
            &has,
            json!({"Type": "Choice", "Choices": [{"Variable": list, "IsPresent": false, "Next": more}], "Default": page}),
        );
        states.add(
            &page,
            json!({"Type": "Pass", "Parameters": {
                "i": 0,
                "n.$": format!("States.ArrayLength({list})"),
                "pages.$": at("pages"),
                "count.$": format!("States.MathAdd({}, States.ArrayLength({list}))", at("count")),
            }, "ResultPath": scan, "Next": test}),
        );
        states.add(
            &test,
            json!({"Type": "Choice", "Choices": [{"Variable": at("i"), "NumericGreaterThanEqualsPath": at("n"), "Next": more}],
                   "Default": item}),
        );
        states.add(
            &item,
            json!({"Type": "Pass", "Parameters": {
                "i.$": format!("States.MathAdd({}, 1)", at("i")),
                "n.$": at("n"),
                "pages.$": at("pages"),
                "count.$": at("count"),
                "item.$": format!("States.ArrayGetItem({list}, {})", at("i")),
            }, "ResultPath": scan, "Next": keep}),
        );
        let best = dot(&own, "v");
        let newer = Rule::join(
            vec![
                Rule::Rule(json!({"Variable": best, "IsPresent": false})),
                Rule::Rule(json!({"Variable": dot(&at("item"), n.by), "TimestampGreaterThanPath": dot(&best, n.by)})),
            ],
            false,
        );
        let mut choices = Vec::new();
        if let Rule::Rule(mut r) = Rule::join(vec![self.cond(cx, &n.keep)?, newer], true) {
            r["Next"] = json!(take);
            choices.push(r);
        }
        choices.push(json!({"Variable": at("i"), "NumericGreaterThanEqualsPath": at("n"), "Next": more}));
        states.add(&keep, json!({"Type": "Choice", "Choices": choices, "Default": item}));
        states.add(
            &take,
            json!({"Type": "Pass", "InputPath": at("item"), "ResultPath": best, "Next": test}),
        );
        states.add(
            &more,
            json!({"Type": "Choice", "Choices": [
                {"And": [{"Variable": token, "IsPresent": true}, {"Variable": at("pages"), "NumericGreaterThanEquals": n.pages}],
                 "Next": too_many},
                {"Variable": token, "IsPresent": true, "Next": count},
            ], "Default": next}),
        );
        let size = page_size(&n.call);
        states.add(
            &too_many,
            json!({"Type": "Fail", "Error": "TooManyItems", "Cause": format!(
                "step `{}`: {} lists more than {} pages of {size} {}; the Step Functions form scans at most that many",
                cx.step.id, n.call.action, n.pages, n.items)}),
        );
        states.add(
            &count,
            json!({"Type": "Pass", "Parameters": {
                "i": 0, "n": 0,
                "pages.$": format!("States.MathAdd({}, 1)", at("pages")),
                "count.$": at("count"),
            }, "ResultPath": scan, "Next": again}),
        );
        self.events.push((cx.step.id.clone(), n.pages * (15 + 8 * size)));
        Ok(init)
    }
}

/// The items a page holds at most: the call's literal `MaxResults`.
fn page_size(call: &crate::actions::sfn::Call) -> usize {
    call.parameters
        .iter()
        .find_map(|(k, a)| match (k, a) {
            (&"MaxResults", Arg::Lit(Value::Number(n))) => n.as_u64().map(|n| n as usize),
            _ => None,
        })
        .unwrap_or(DEFAULT_PAGE)
}
