use es_core::prelude::*;

#[derive(Default)]
pub struct Flow;

impl Flow {
    #[rejected]
    fn refused(&mut self, _r: &Rejection, _out: &mut Commands) {}
}

fn main() {}
