//! The CEL that dynamic admission evaluates — webhooks' `matchConditions`, and
//! ValidatingAdmissionPolicies' conditions, variables, validations and messages — over
//! upstream's admission variables: `object`, `oldObject` (null on create and delete, as upstream),
//! `request` (the AdmissionRequest sent to webhooks), `params`, `namespaceObject` and
//! `variables`.
//!
//! Expressions compile and values convert with the CRD validation rules' CEL
//! (`customresource::cel`): one CEL environment for the whole API server. Not done: upstream's
//! `authorizer` variable, type checking against the resources' schemas and cost limits.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::customresource::cel::{compile, value};

/// A compiled expression with its source (for messages).
#[derive(Clone)]
pub struct Expression {
    pub source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

impl Expression {
    pub fn compile(source: &str) -> Result<Expression, String> {
        Ok(Expression {
            source: source.to_string(),
            program: Arc::new(compile(source)?),
        })
    }

    /// Evaluates to a value; the error is upstream's evaluation error text.
    pub fn eval(&self, activation: &Activation) -> Result<cel::Value, String> {
        self.program
            .execute(&activation.context)
            .map_err(|e| e.to_string())
    }

    /// Evaluates to a bool; anything else is an error.
    pub fn eval_bool(&self, activation: &Activation) -> Result<bool, String> {
        match self.eval(activation)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!(
                "expression '{}' resulted in non-boolean value {other:?}",
                self.source
            )),
        }
    }

    /// Evaluates to a string (messageExpression); anything else is an error.
    pub fn eval_string(&self, activation: &Activation) -> Result<String, String> {
        match self.eval(activation)? {
            cel::Value::String(s) => Ok(s.to_string()),
            other => Err(format!(
                "messageExpression '{}' resulted in non-string value {other:?}",
                self.source
            )),
        }
    }
}

/// The variables of one admission request, built once and shared by its expressions.
pub struct Activation {
    context: cel::Context<'static, 'static>,
}

impl Activation {
    /// `object`/`oldObject` absent are null; `request` is the AdmissionRequest.
    pub fn new(
        object: Option<&Value>,
        old: Option<&Value>,
        request: &Value,
        params: Option<&Value>,
        namespace: Option<&Value>,
    ) -> Activation {
        let mut context = cel::Context::default();
        let or_null = |v: Option<&Value>| v.map(value).unwrap_or(cel::Value::Null);
        context.add_variable_from_value("object", or_null(object));
        context.add_variable_from_value("oldObject", or_null(old));
        context.add_variable_from_value("request", value(request));
        context.add_variable_from_value("params", or_null(params));
        context.add_variable_from_value("namespaceObject", or_null(namespace));
        context.add_variable_from_value(
            "variables",
            cel::Value::from(HashMap::<String, cel::Value>::new()),
        );
        Activation { context }
    }

    /// Sets `variables` (a policy's, evaluated in order: each sees the ones before it).
    pub fn set_variables(&mut self, variables: HashMap<String, cel::Value>) {
        self.context
            .add_variable_from_value("variables", cel::Value::from(variables));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_see_the_admission_variables() {
        let object =
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 6}});
        let request = json!({"operation": "CREATE", "userInfo": {"username": "admin"}});
        let params = json!({"data": {"max": "5"}});
        let mut activation = Activation::new(Some(&object), None, &request, Some(&params), None);
        let check = |source: &str, activation: &Activation| {
            Expression::compile(source).unwrap().eval_bool(activation)
        };
        assert_eq!(
            check("object.spec.replicas > int(params.data.max)", &activation),
            Ok(true)
        );
        assert_eq!(check("oldObject == null", &activation), Ok(true));
        assert_eq!(
            check("request.operation == 'CREATE'", &activation),
            Ok(true)
        );
        assert_eq!(
            check(
                "has(object.metadata.labels) && 'x' in object.metadata.labels",
                &activation
            ),
            Ok(true)
        );
        let mut variables = HashMap::new();
        variables.insert("name".to_string(), cel::Value::String(Arc::new("a".into())));
        activation.set_variables(variables);
        assert_eq!(
            check("variables.name == object.metadata.name", &activation),
            Ok(true)
        );
        assert!(check("object.spec.replicas", &activation).is_err());
    }
}
