      *****************************************************************
      * CORE BANKING END-OF-DAY STATEMENT EXTRACT (FB, LRECL 120)
      * PER ACCOUNT: ONE HEADER ('H'), ONE DETAIL ('D') PER POSTING,
      * ONE TRAILER ('T'). THE FIRST BYTE PICKS THE LAYOUT.
      *****************************************************************
       01  STMT-HEADER.
           05  SH-REC-TYPE             PIC X.
               88  SH-IS-HEADER                VALUE 'H'.
           05  SH-ACCOUNT-NO           PIC X(34).
           05  SH-CURRENCY             PIC X(3).
           05  SH-STATEMENT-DATE       PIC 9(8).
           05  SH-OPENING-BALANCE      PIC S9(13)V99 COMP-3.
           05  SH-ACCOUNT-NAME         PIC X(35).
           05  FILLER                  PIC X(31).
       01  STMT-DETAIL.
           05  SD-REC-TYPE             PIC X.
               88  SD-IS-DETAIL                VALUE 'D'.
           05  SD-POSTING-REF          PIC X(24).
           05  SD-BOOKING-DATE         PIC 9(8).
           05  SD-VALUE-DATE           PIC 9(8).
           05  SD-AMOUNT               PIC S9(13)V99 COMP-3.
           05  SD-DEBIT-CREDIT         PIC X.
               88  SD-IS-DEBIT                 VALUE 'D'.
               88  SD-IS-CREDIT                VALUE 'C'.
           05  SD-TRAN-CODE            PIC X(4).
           05  SD-NARRATIVE            PIC X(35).
           05  FILLER                  PIC X(31).
       01  STMT-TRAILER.
           05  ST-REC-TYPE             PIC X.
               88  ST-IS-TRAILER               VALUE 'T'.
           05  ST-ENTRY-COUNT          PIC 9(7).
           05  ST-TOTAL-DEBITS         PIC S9(15)V99 COMP-3.
           05  ST-TOTAL-CREDITS        PIC S9(15)V99 COMP-3.
           05  ST-CLOSING-BALANCE      PIC S9(13)V99 COMP-3.
           05  FILLER                  PIC X(86).
