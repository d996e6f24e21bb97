use es_core::erasure::PiiFields;
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "customer.registered")]
pub struct Registered {
    pub customer: u64,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    #[serde(rename = "mail")]
    pub email: String,
    #[pii(subject = self::subject_of)]
    pub phone: Option<String>,
}

fn subject_of(e: &Registered) -> String {
    format!("customer-{}", e.customer)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, Pii)]
pub struct Customer {
    pub id: String,
    #[pii(subject = Customer::subject)]
    pub email: String,
}

impl Customer {
    fn subject(&self) -> &str {
        &self.id
    }
}

#[aggregate(name = "customer")]
impl Customer {
    #[command]
    fn register(&self, c: Register) -> Result<Registered, std::convert::Infallible> {
        Ok(Registered { customer: 7, email: c.email, phone: None })
    }
    #[apply]
    fn registered(&mut self, e: &Registered) {
        self.email = e.email.clone();
    }
}

fn main() {
    let e = Registered { customer: 7, email: "a@b.c".into(), phone: None };
    let fields = e.pii_fields();
    assert_eq!(fields[0].name, "mail");
    assert_eq!(fields[1].subject, "customer-7");
    let state = Customer { id: "c".into(), email: "a@b.c".into() };
    assert_eq!(Aggregate::pii_fields(&state).len(), 1);
}
