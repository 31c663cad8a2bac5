      *****************************************************************
      * CORE BANKING INTERFACE - REPLY RECORD (200 BYTES, EBCDIC)
      * ONE REPLY PER REQUEST RECORD; CB-RP-POSTING-REF ECHOES THE
      * REQUEST'S CB-POSTING-REF. RESULT CODES FOLLOW ISO 8583 FIELD 39.
      *****************************************************************
       01  CB-REPLY.
           05  CB-RP-TRAN-CODE         PIC X(4).
           05  CB-RP-POSTING-REF       PIC X(24).
           05  CB-RP-RESULT-CODE       PIC X(2).
               88  CB-RP-APPROVED              VALUE '00'.
               88  CB-RP-INVALID-TRAN          VALUE '12'.
               88  CB-RP-INVALID-AMOUNT        VALUE '13'.
               88  CB-RP-UNKNOWN-ACCOUNT       VALUE '14'.
               88  CB-RP-FORMAT-ERROR          VALUE '30'.
               88  CB-RP-INSUFFICIENT-FUNDS    VALUE '51'.
               88  CB-RP-ACCOUNT-CLOSED        VALUE '62'.
               88  CB-RP-ORIGINAL-NOT-FOUND    VALUE '25'.
               88  CB-RP-SYSTEM-ERROR          VALUE '96'.
           05  CB-RP-ACCOUNT-NO        PIC X(34).
           05  CB-RP-LEDGER-BALANCE    PIC S9(13)V99 COMP-3.
           05  CB-RP-AVAILABLE-BALANCE PIC S9(13)V99 COMP-3.
           05  CB-RP-CURRENCY          PIC X(3).
      *    YYYYMMDDHHMMSS, UTC.
           05  CB-RP-POSTED-AT         PIC 9(14).
           05  CB-RP-REASON-TEXT       PIC X(40).
           05  FILLER                  PIC X(63).
