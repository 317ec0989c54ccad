//! A form's `Each`: its ops once per item of a list, as a counted loop (a Pass setting index and count, a Choice
//! ending it, a Pass taking the item, the ops, a Pass counting on). No Map state: a Map's iterations cannot write
//! the step's working data, and the lists are short (an image's block devices).

use serde_json::json;

use super::build::{Builder, Chain};
use super::expr::dot;
use super::form::StepCx;
use crate::actions::sfn::{Arg, Op};

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn each(
        &mut self,
        cx: &mut StepCx<'_>,
        list: &Arg,
        item: &'static str,
        then: &[Op],
        next: &str,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        let list = self
            .arg(cx, list)?
            .path()
            .map(str::to_string)
            .ok_or_else(|| format!("`{}`: the list of an `Each` must be a field", cx.step.id))?;
        let root = cx.root();
        let counter = dot(&root, &format!("each_{item}"));
        let start = cx.name(&format!("each {item}"));
        let test = cx.name(&format!("more {item}?"));
        let take = cx.name(&format!("take {item}"));
        let step = cx.name(&format!("next {item}"));
        let body = self.ops(cx, then, &step, exit, states)?;
        states.add(
            &step,
            json!({"Type": "Pass", "Parameters": {"i.$": format!("States.MathAdd({counter}.i, 1)"), "n.$": format!("{counter}.n")},
                   "ResultPath": counter, "Next": test}),
        );
        states.add(
            &take,
            json!({"Type": "Pass", "Parameters": {"v.$": format!("States.ArrayGetItem({list}, {counter}.i)")},
                   "ResultPath": dot(&root, item), "Next": body}),
        );
        states.add(
            &test,
            json!({"Type": "Choice", "Choices": [{"Variable": format!("{counter}.i"), "NumericGreaterThanEqualsPath": format!("{counter}.n"), "Next": next}],
                   "Default": take}),
        );
        states.add(
            &start,
            json!({"Type": "Pass", "Parameters": {"i": 0, "n.$": format!("States.ArrayLength({list})")},
                   "ResultPath": counter, "Next": test}),
        );
        Ok(start)
    }
}
