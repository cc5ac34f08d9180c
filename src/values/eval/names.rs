//! Names: locals, package variables (`main.x`, `"net/http".x`), the
//! predeclared `nil`, `true` and `false`, types, and `runtime.curg`.

use super::super::{Place, Scope, Value, VarError};
use super::{Const, Val};

impl Scope<'_> {
    pub(super) fn local(&self, name: &str) -> Option<Value> {
        self.variables(true)
            .into_iter()
            .chain(self.variables(false))
            .flatten()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A package variable by full name.
    fn global(&self, name: &str) -> Option<Val> {
        let g = self.index.global(name)?;
        Some(Val::Typed(Value {
            ty: g.ty?,
            place: Place::Mem(g.addr.wrapping_add(self.bias)),
        }))
    }

    pub(super) fn ident(&self, n: &str) -> Result<Val, VarError> {
        if let Some(v) = self.local(n) {
            return Ok(Val::Typed(v));
        }
        if let Some(v) = self.global(n).or_else(|| self.global(&format!("main.{n}"))) {
            return Ok(v);
        }
        match n {
            "nil" => return Ok(Val::Const(Const::Nil)),
            "true" | "false" => return Ok(Val::Const(Const::Bool(n == "true"))),
            _ => {}
        }
        if let Some(t) = self.type_by_name(n) {
            return Ok(Val::Type(t));
        }
        Err(VarError::NoVariable {
            name: n.to_string(),
            function: self.function_name(),
        })
    }

    /// `pkg.name` when `pkg` is not a variable: a package variable, a type
    /// or `runtime.curg`; `None` when `pkg` is a value (`name` is then one
    /// of its fields).
    pub(super) fn qualified(&self, pkg: &str, name: &str) -> Option<Result<Val, VarError>> {
        if self.local(pkg).is_some() {
            return None;
        }
        let full = format!("{pkg}.{name}");
        if let Some(v) = self.global(&full) {
            return Some(Ok(v));
        }
        if let Some(t) = self.index.type_named(&full) {
            return Some(Ok(Val::Type(t)));
        }
        if full == "runtime.curg" {
            return Some(self.curg());
        }
        if !self.index.is_package(pkg) {
            return None;
        }
        // A package's variable that is not there: the name the user means
        // is the whole of it (not `no variable "main"` for `main.counter`).
        Some(Err(VarError::NoVariable {
            name: full,
            function: self.function_name(),
        }))
    }

    /// `runtime.curg`, as Delve has it: the selected goroutine's `g`
    /// itself (a `runtime.g` in memory, so `&runtime.curg` is its address).
    fn curg(&self) -> Result<Val, VarError> {
        let gp = self.curg.ok_or_else(|| VarError::NoVariable {
            name: "runtime.curg".into(),
            function: self.function_name(),
        })?;
        let g = self
            .index
            .type_named("runtime.g")
            .ok_or_else(|| VarError::NoType("runtime.g".into()))?;
        Ok(Val::Typed(Value {
            ty: g,
            place: Place::Mem(gp),
        }))
    }
}
