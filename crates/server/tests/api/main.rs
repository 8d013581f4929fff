//! HTTP API tests: a real server on port 0 with a fresh store per test, every test run
//! on SQLite (`sqlite::…`) and on PostgreSQL (`postgres::…`).
#![allow(clippy::unwrap_used)]

mod bad_input;
mod campaigns;
mod cli;
mod contacts;
mod delivery;
mod events;
mod export;
mod fields;
mod helpers;
mod imports;
mod isolation;
mod membership;
mod segments;
#[path = "../support/smtp.rs"]
mod smtp;
mod snapshots;
mod story;

/// Declares each test once per backend; the test body gets a fresh `TestApp`.
macro_rules! on_both_backends {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::helpers::run(segmentd_store::testing::Backend::Sqlite, stringify!($test), crate::$module::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::helpers::run(segmentd_store::testing::Backend::Postgres, stringify!($test), crate::$module::$test).await;
                }
            )*
        }
    };
}

on_both_backends!(
    snapshots::a_restart_from_a_snapshot_replays_what_came_after_it_as_a_rebuild_would,
    snapshots::a_damaged_snapshot_is_refused_and_the_index_rebuilt_from_the_store,
    bad_input::a_missing_or_bad_api_key_is_unauthorized,
    bad_input::malformed_json_is_a_bad_request_on_every_write,
    bad_input::wrong_shapes_and_unknown_body_fields_are_unprocessable,
    bad_input::every_invalid_contact_of_a_batch_is_listed_and_nothing_is_stored,
    bad_input::an_oversized_body_is_refused,
    bad_input::unknown_ids_and_routes_are_not_found,
    bad_input::text_with_a_nul_character_is_refused_with_its_path,
    bad_input::nul_and_invalid_utf8_in_urls_and_forms_are_refused_everywhere,
    bad_input::the_cost_of_a_refusal_is_bounded_by_the_limits,
    bad_input::keys_are_created_listed_and_revoked_and_a_revoked_key_is_refused_at_once,
    contacts::an_upsert_creates_then_patches_only_the_given_attributes,
    contacts::a_batch_of_ten_thousand_contacts_is_accepted_in_one_request,
    contacts::more_than_ten_thousand_contacts_are_refused_and_nothing_is_stored,
    contacts::contacts_are_listed_in_pages_by_external_id,
    contacts::a_deleted_contact_is_gone_with_its_events,
    events::events_of_every_type_are_accepted_and_reposting_an_id_changes_nothing,
    events::an_event_for_an_unknown_contact_rejects_the_whole_batch,
    events::invalid_events_are_each_reported_with_their_paths_and_nothing_is_stored,
    events::well_shaped_events_with_bad_values_are_reported_by_index,
    events::a_batch_of_ten_thousand_events_is_accepted_in_one_request,
    fields::a_declared_field_is_listed_with_its_type,
    fields::a_taken_key_is_a_conflict,
    fields::bad_field_definitions_are_rejected_with_their_paths,
    fields::deleting_a_field_removes_its_values_and_a_used_field_cannot_be_deleted,
    isolation::one_account_never_sees_or_touches_anothers_data,
    segments::a_segment_is_created_read_listed_updated_and_deleted,
    segments::a_taken_name_is_a_conflict_whatever_its_case,
    segments::a_bad_rule_is_rejected_with_every_path_and_nothing_is_saved,
    segments::segment_references_are_checked_and_a_referenced_segment_cannot_be_deleted,
    segments::count_members_and_preview_honour_as_of,
    segments::a_preview_right_after_a_field_or_segment_write_parses_against_it,
    segments::the_openapi_document_describes_every_call_of_the_spec,
    membership::membership_follows_every_write_at_once_and_each_change_is_in_the_feed,
    membership::a_new_or_edited_segment_logs_its_initial_members,
    membership::history_counts_entries_exits_and_totals_per_day,
    membership::explain_shows_each_nodes_truth_and_matching_events,
    membership::a_restart_rebuilds_the_index_and_logs_what_changed_while_down,
    membership::count_and_members_agree_across_a_refresh,
    story::segments_of_every_condition_kind_hold_the_contacts_worked_out_by_hand,
    export::a_segment_exports_every_member_as_csv_in_external_id_order,
    imports::columns_are_mapped_to_attributes_and_fields_and_new_fields_get_their_type,
    imports::bad_rows_are_rejected_with_their_reason_and_the_rest_is_stored,
    imports::a_mapping_that_cannot_work_is_refused_whole_and_nothing_is_stored,
    imports::files_that_are_not_importable_are_refused_at_upload,
    imports::a_preview_shows_the_first_rows_with_their_problems_by_column,
    imports::a_large_file_is_imported_in_batches_and_its_progress_reaches_done,
    imports::an_export_imports_into_a_new_account_with_the_same_count_for_every_segment,
    membership::history_before_a_segment_was_saved_is_computed_from_the_data,
    campaigns::an_email_campaign_reaches_exactly_its_frozen_recipients_personalised,
    campaigns::opening_the_pixel_moves_the_contact_into_mail_open_occurred_and_links_work,
    campaigns::forged_or_altered_links_are_not_found_and_record_nothing,
    campaigns::sms_and_push_go_to_the_provider_as_json_and_their_links_record_clicks,
    campaigns::a_restart_mid_send_resumes_without_sending_anyone_twice,
    campaigns::bad_campaigns_are_refused_with_their_paths,
    campaigns::a_scheduled_campaign_is_sent_by_itself_when_due,
    campaigns::a_click_hands_the_site_a_token_whose_page_views_become_visits,
    campaigns::required_starttls_refuses_a_server_without_it_and_each_failure_is_kept,
    delivery::a_throttle_is_ridden_out_and_a_hard_bounce_is_recorded_and_excluded_next_time,
    delivery::too_many_errors_in_a_row_pause_the_campaign_until_it_is_resumed,
    delivery::a_lost_reply_is_unknown_and_never_sent_again_unless_asked,
    delivery::a_slow_provider_gets_each_sms_once_signed_with_an_idempotency_key,
    delivery::campaigns_are_edited_cancelled_duplicated_deleted_and_tested_as_allowed,
    delivery::bounces_complaints_and_sms_stop_come_back_through_the_api,
    delivery::a_provider_429_is_retried_after_its_retry_after_with_the_same_key,
);
