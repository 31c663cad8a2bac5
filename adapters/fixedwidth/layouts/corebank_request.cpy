      *****************************************************************
      * CORE BANKING INTERFACE - REQUEST RECORD (200 BYTES, EBCDIC)
      * ONE RECORD PER TRANSACTION, SENT BY THE HUB TO THE MAINFRAME.
      * CB-POSTING-REF IS THE IDEMPOTENCY KEY: A REPEATED REQUEST WITH
      * THE SAME REFERENCE IS APPLIED ONCE AND ANSWERED THE SAME WAY.
      *****************************************************************
       01  CB-REQUEST.
           05  CB-TRAN-CODE            PIC X(4).
               88  CB-BALANCE-ENQUIRY          VALUE 'BALQ'.
               88  CB-DEBIT-POSTING            VALUE 'DEBT'.
               88  CB-CREDIT-POSTING           VALUE 'CRDT'.
               88  CB-FUNDS-TRANSFER           VALUE 'XFER'.
               88  CB-REVERSAL                 VALUE 'REVS'.
               88  CB-PLACE-HOLD               VALUE 'HOLD'.
               88  CB-RELEASE-HOLD             VALUE 'RELS'.
           05  CB-POSTING-REF          PIC X(24).
      *    REVS: THE POSTING TO REVERSE. RELS: THE HOLD TO RELEASE.
           05  CB-ORIG-POSTING-REF     PIC X(24).
           05  CB-ACCOUNT-NO           PIC X(34).
      *    XFER: THE ACCOUNT CREDITED (CB-ACCOUNT-NO IS DEBITED).
           05  CB-CONTRA-ACCOUNT       PIC X(34).
           05  CB-AMOUNT               PIC S9(13)V99 COMP-3.
           05  CB-CURRENCY             PIC X(3).
           05  CB-VALUE-DATE           PIC 9(8).
           05  CB-CHANNEL              PIC X(4).
           05  CB-NARRATIVE            PIC X(35).
           05  FILLER                  PIC X(22).
