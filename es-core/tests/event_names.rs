//! Stored event names are global: the kernel refuses two different Rust event types that
//! would be stored under one name (or one's alias), across aggregates, and accepts one type
//! shared by several aggregates.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::kernel::BuildError;
use es_core::prelude::*;

/// A bank with its `Deposited`, stored as "Deposited".
mod bank {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Deposit {
        pub amount: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    pub struct Deposited {
        pub amount: u64,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub balance: u64,
    }

    #[aggregate(name = "account")]
    impl Account {
        #[command]
        fn deposit(&self, c: Deposit) -> Result<Deposited, std::convert::Infallible> {
            Ok(Deposited { amount: c.amount })
        }

        #[apply]
        fn deposited(&mut self, e: &Deposited) {
            self.balance += e.amount;
        }
    }

    /// A second aggregate emitting the bank's own `Deposited`: one type, shared.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Ledger {
        pub total: u64,
    }

    #[aggregate(name = "ledger")]
    impl Ledger {
        #[command]
        fn deposit(&self, c: Deposit) -> Result<Deposited, std::convert::Infallible> {
            Ok(Deposited { amount: c.amount })
        }

        #[apply]
        fn deposited(&mut self, e: &Deposited) {
            self.total += e.amount;
        }
    }
}

/// A wallet whose own `Deposited` has another shape but the same stored name.
mod wallet {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct TopUp {
        pub cents: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    pub struct Deposited {
        pub cents: u64,
        pub card: String,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Wallet {
        pub cents: u64,
    }

    #[aggregate(name = "wallet")]
    impl Wallet {
        #[command]
        fn top_up(&self, c: TopUp) -> Result<Deposited, std::convert::Infallible> {
            Ok(Deposited {
                cents: c.cents,
                card: "visa".into(),
            })
        }

        #[apply]
        fn deposited(&mut self, e: &Deposited) {
            self.cents += e.cents;
        }
    }

    /// The fixed wallet: its event is named after its aggregate, and the old name is not kept.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "wallet.deposited")]
    pub struct Credited {
        pub cents: u64,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct FixedWallet {
        pub cents: u64,
    }

    #[aggregate(name = "fixed_wallet")]
    impl FixedWallet {
        #[command]
        fn top_up(&self, c: TopUp) -> Result<Credited, std::convert::Infallible> {
            Ok(Credited { cents: c.cents })
        }

        #[apply]
        fn credited(&mut self, e: &Credited) {
            self.cents += e.cents;
        }
    }

    /// A wallet that kept "Deposited" as an alias of its renamed event: still two types for
    /// one stored name.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "wallet.credited", aliases("Deposited"))]
    pub struct CreditedWithAlias {
        pub cents: u64,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct AliasWallet {
        pub cents: u64,
    }

    #[aggregate(name = "alias_wallet")]
    impl AliasWallet {
        #[command]
        fn top_up(&self, c: TopUp) -> Result<CreditedWithAlias, std::convert::Infallible> {
            Ok(CreditedWithAlias { cents: c.cents })
        }

        #[apply]
        fn credited(&mut self, e: &CreditedWithAlias) {
            self.cents += e.cents;
        }
    }
}

#[tokio::test]
async fn two_rust_types_under_one_stored_name_are_refused_with_the_fix_in_the_message() {
    let error = Kernel::builder()
        .store(MemoryStore::new())
        .register::<bank::Account>()
        .register::<wallet::Wallet>()
        .build()
        .unwrap_err();
    let BuildError::EventNameClash {
        name,
        first,
        first_aggregate,
        second,
        second_aggregate,
    } = &error
    else {
        panic!("expected EventNameClash, got {error:?}");
    };
    assert_eq!(*name, "Deposited");
    assert_eq!((*first_aggregate, *second_aggregate), ("account", "wallet"));
    assert!(first.ends_with("bank::Deposited"), "{first}");
    assert!(second.ends_with("wallet::Deposited"), "{second}");
    let message = error.to_string();
    assert!(
        message.contains("`Deposited` stands for two Rust types")
            && message.contains("#[event(name = \"...\")]")
            && message.contains("\"wallet.Deposited\""),
        "{message}"
    );
}

#[tokio::test]
async fn an_alias_equal_to_another_aggregates_event_name_is_refused() {
    let error = Kernel::builder()
        .store(MemoryStore::new())
        .register::<bank::Account>()
        .register::<wallet::AliasWallet>()
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            BuildError::EventNameClash {
                name: "Deposited",
                second_aggregate: "alias_wallet",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn one_type_shared_by_two_aggregates_and_distinct_names_are_fine() {
    let kernel = Kernel::builder()
        .store(MemoryStore::new())
        .register::<bank::Account>()
        .register::<bank::Ledger>()
        .register::<wallet::FixedWallet>()
        .build()
        .unwrap();
    kernel
        .dispatch::<bank::Account>("a", bank::Deposit { amount: 5 })
        .await
        .unwrap();
    kernel
        .dispatch::<bank::Ledger>("l", bank::Deposit { amount: 7 })
        .await
        .unwrap();
    kernel
        .dispatch::<wallet::FixedWallet>("w", wallet::TopUp { cents: 9 })
        .await
        .unwrap();
    assert_eq!(kernel.state::<bank::Account>("a").await.unwrap().balance, 5);
    assert_eq!(kernel.state::<bank::Ledger>("l").await.unwrap().total, 7);
    assert_eq!(
        kernel
            .state::<wallet::FixedWallet>("w")
            .await
            .unwrap()
            .cents,
        9
    );
    kernel.shutdown().await;
}
