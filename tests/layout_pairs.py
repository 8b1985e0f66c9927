"""Every layout that exists twice: (name, Construct definition, firmware layout name in fiscal_till.layouts).

The agreement tests and the golden vectors iterate over this list; `test_every_layout_is_paired` fails
when either side gains a layout that is not listed here.
"""

from protocol import apdu, cardfiles, commands, records, types

PAIRS = [
    # shared types
    ("Controls", types.Controls, "CONTROLS"),
    ("TaxItem", types.TaxItem, "TAX_ITEM"),
    ("Totals", types.Totals, "TOTALS"),
    ("TaxAmount", types.TaxAmount, "TAX_AMOUNT"),
    ("TaxLineTotals", types.TaxLineTotals, "TAX_LINE_TOTALS"),
    # fiscal-memory records
    ("RequestTag", records.RequestTag, "REQUEST_TAG"),
    ("InitRecord", records.InitRecord, "INIT_RECORD"),
    ("DailyRecord", records.DailyRecord, "DAILY_RECORD"),
    ("DeclarationRecord", records.DeclarationRecord, "DECLARATION_RECORD"),
    ("ClearUnlockRecord", records.ClearUnlockRecord, "CLEAR_UNLOCK_RECORD"),
    ("RollLoadRecord", records.RollLoadRecord, "ROLL_LOAD_RECORD"),
    ("RollUsageRecord", records.RollUsageRecord, "ROLL_USAGE_RECORD"),
    ("InvoiceRecord", records.InvoiceRecord, "INVOICE_RECORD"),
    ("EventRecord", records.EventRecord, "EVENT_RECORD"),
    # host-link commands
    ("InfoReply", commands.InfoReply, "INFO_REPLY"),
    ("StatusReply", commands.StatusReply, "STATUS_REPLY"),
    ("SetTimeRequest", commands.SetTimeRequest, "SET_TIME_REQUEST"),
    ("InitializeRequest", commands.InitializeRequest, "INITIALIZE_REQUEST"),
    ("InitializeReply", commands.InitializeReply, "INITIALIZE_REPLY"),
    ("FlagsRequest", commands.FlagsRequest, "FLAGS_REQUEST"),
    ("LoadRollReply", commands.LoadRollReply, "LOAD_ROLL_REPLY"),
    ("InvoiceLine", commands.InvoiceLine, "INVOICE_LINE"),
    ("IssueInvoiceRequest", commands.IssueInvoiceRequest, "ISSUE_INVOICE_REQUEST"),
    ("GetDocumentRequest", commands.GetDocumentRequest, "GET_DOCUMENT_REQUEST"),
    ("DailyCloseReply", commands.DailyCloseReply, "DAILY_CLOSE_REPLY"),
    ("DeclareRequest", commands.DeclareRequest, "DECLARE_REQUEST"),
    ("ClearUnlockReply", commands.ClearUnlockReply, "CLEAR_UNLOCK_REPLY"),
    ("ReadJournalRequest", commands.ReadJournalRequest, "READ_JOURNAL_REQUEST"),
    ("ReadJournalReply", commands.ReadJournalReply, "READ_JOURNAL_REPLY"),
    ("InspectReply", commands.InspectReply, "INSPECT_REPLY"),
    ("ReportRequest", commands.ReportRequest, "REPORT_REQUEST"),
    ("ReportReply", commands.ReportReply, "REPORT_REPLY"),
    # card APDU data
    ("RegisterNb", apdu.RegisterNb, "REGISTER_NB"),
    ("RegisterSignResponse", apdu.RegisterSignResponse, "REGISTER_SIGN_RESPONSE"),
    ("TerminalRegisterData", apdu.TerminalRegisterData, "TERMINAL_REGISTER_DATA"),
    ("TerminalRegisterResponse", apdu.TerminalRegisterResponse, "TERMINAL_REGISTER_RESPONSE"),
    ("IssueInvoiceData", apdu.IssueInvoiceData, "ISSUE_INVOICE_DATA"),
    ("IssueInvoiceResponse", apdu.IssueInvoiceResponse, "ISSUE_INVOICE_RESPONSE"),
    ("PeriodSums", apdu.PeriodSums, "PERIOD_SUMS"),
    ("DeclareDutyData", apdu.DeclareDutyData, "DECLARE_DUTY_DATA"),
    ("DeclareDutyResponse", apdu.DeclareDutyResponse, "DECLARE_DUTY_RESPONSE"),
    ("DailyCollectSignData", apdu.DailyCollectSignData, "DAILY_COLLECT_SIGN_DATA"),
    ("DailyCollectSignResponse", apdu.DailyCollectSignResponse, "DAILY_COLLECT_SIGN_RESPONSE"),
    ("UpdateControlsData", apdu.UpdateControlsData, "UPDATE_CONTROLS_DATA"),
    ("RollData", apdu.RollData, "ROLL_DATA"),
    ("VerifyPinData", apdu.VerifyPinData, "VERIFY_PIN_DATA"),
    ("VerifyPinResponse", apdu.VerifyPinResponse, "VERIFY_PIN_RESPONSE"),
    ("DataCollectData", apdu.DataCollectData, "DATA_COLLECT_DATA"),
    ("ManagementCertificate", apdu.ManagementCertificate, "MANAGEMENT_CERTIFICATE"),
    ("InspectorProof", apdu.InspectorProof, "INSPECTOR_PROOF"),
    # card files
    ("FiscalControls", cardfiles.FiscalControls, "FISCAL_CONTROLS"),
    ("FiscalIdentity", cardfiles.FiscalIdentity, "FISCAL_IDENTITY"),
    ("FiscalToday", cardfiles.FiscalToday, "FISCAL_TODAY"),
    ("FiscalDeclaration", cardfiles.FiscalDeclaration, "FISCAL_DECLARATION"),
    ("FiscalRoll", cardfiles.FiscalRoll, "FISCAL_ROLL"),
    ("UserControls", cardfiles.UserControls, "USER_CONTROLS"),
    ("UserTaxItems", cardfiles.UserTaxItems, "USER_TAX_ITEMS"),
    ("UserDeclaration", cardfiles.UserDeclaration, "USER_DECLARATION"),
    ("UserRoll", cardfiles.UserRoll, "USER_ROLL"),
    ("UserTill", cardfiles.UserTill, "USER_TILL"),
]

# Constructs that are the same object as a listed one under another name (aliases are not layouts).
ALIASES = {
    "IssueInvoiceReply": "InvoiceRecord", "GetDocumentReply": "InvoiceRecord",
    "DeclareReply": "DeclarationRecord", "InputInvoiceNbData": "RollData",
    "DistributeInvoiceNbResponse": "RollData", "UserLastRoll": "UserRoll", "UserIdentity": "FiscalIdentity",
    "LoadRollRequest": "FlagsRequest", "ClearUnlockRequest": "FlagsRequest",
}
