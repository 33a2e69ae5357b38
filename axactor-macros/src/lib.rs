//! TEMPORARY placeholder (the macro helper replaces this file).
use proc_macro::TokenStream;
/// placeholder
#[proc_macro_attribute]
pub fn actor(_a: TokenStream, i: TokenStream) -> TokenStream { i }
/// placeholder
#[proc_macro_attribute]
pub fn msg(_a: TokenStream, i: TokenStream) -> TokenStream { i }
