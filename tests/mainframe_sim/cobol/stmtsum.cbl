      *****************************************************************
      * READS AN END-OF-DAY STATEMENT EXTRACT (CODE SET ASCII, FB 120,
      * COPYBOOK CORESTMT) AND CHECKS EACH ACCOUNT'S TRAILER AGAINST
      * ITS OWN SUMS: ENTRY COUNT, TOTAL DEBITS, TOTAL CREDITS, CLOSING
      * BALANCE = OPENING - DEBITS + CREDITS. ONE LINE PER ACCOUNT:
      * OK|BAD ACCOUNT-NO ENTRY-COUNT CLOSING-BALANCE. ARGUMENT: FILE.
      *****************************************************************
       IDENTIFICATION DIVISION.
       PROGRAM-ID. STMTSUM.
       ENVIRONMENT DIVISION.
       INPUT-OUTPUT SECTION.
       FILE-CONTROL.
           SELECT STMT-FILE ASSIGN TO WS-FILE-NAME
               ORGANIZATION IS SEQUENTIAL
               FILE STATUS IS WS-STATUS.
       DATA DIVISION.
       FILE SECTION.
       FD  STMT-FILE
           RECORD CONTAINS 120 CHARACTERS.
           COPY "corebank_statement.cpy".
       WORKING-STORAGE SECTION.
       01  WS-FILE-NAME            PIC X(256).
       01  WS-STATUS               PIC XX.
       01  WS-EOF                  PIC X VALUE 'N'.
       01  WS-ACCOUNT              PIC X(34).
       01  WS-OPENING              PIC S9(15)V99 COMP-3.
       01  WS-DEBITS               PIC S9(15)V99 COMP-3.
       01  WS-CREDITS              PIC S9(15)V99 COMP-3.
       01  WS-CLOSING              PIC S9(15)V99 COMP-3.
       01  WS-COUNT                PIC 9(7).
       01  WS-SHOW-CLOSING         PIC -(15)9.99.
       01  WS-RESULT               PIC X(3).
       PROCEDURE DIVISION.
           ACCEPT WS-FILE-NAME FROM COMMAND-LINE
           OPEN INPUT STMT-FILE
           IF WS-STATUS NOT = '00'
               DISPLAY 'OPEN FAILED ' WS-STATUS
               MOVE 1 TO RETURN-CODE
               STOP RUN
           END-IF
           PERFORM UNTIL WS-EOF = 'Y'
               READ STMT-FILE
                   AT END MOVE 'Y' TO WS-EOF
                   NOT AT END PERFORM ONE-RECORD
               END-READ
           END-PERFORM
           CLOSE STMT-FILE
           STOP RUN.

       ONE-RECORD.
           EVALUATE TRUE
               WHEN SH-IS-HEADER
                   MOVE SH-ACCOUNT-NO TO WS-ACCOUNT
                   MOVE SH-OPENING-BALANCE TO WS-OPENING
                   MOVE 0 TO WS-DEBITS WS-CREDITS WS-COUNT
               WHEN SD-IS-DETAIL
                   ADD 1 TO WS-COUNT
                   IF SD-IS-DEBIT
                       ADD SD-AMOUNT TO WS-DEBITS
                   ELSE
                       ADD SD-AMOUNT TO WS-CREDITS
                   END-IF
               WHEN ST-IS-TRAILER
                   COMPUTE WS-CLOSING =
                       WS-OPENING - WS-DEBITS + WS-CREDITS
                   MOVE 'OK ' TO WS-RESULT
                   IF WS-COUNT NOT = ST-ENTRY-COUNT
                      OR WS-DEBITS NOT = ST-TOTAL-DEBITS
                      OR WS-CREDITS NOT = ST-TOTAL-CREDITS
                      OR WS-CLOSING NOT = ST-CLOSING-BALANCE
                       MOVE 'BAD' TO WS-RESULT
                   END-IF
                   MOVE WS-CLOSING TO WS-SHOW-CLOSING
                   DISPLAY WS-RESULT ' ' WS-ACCOUNT ' ' WS-COUNT ' '
                       WS-SHOW-CLOSING
               WHEN OTHER
                   DISPLAY 'UNKNOWN RECORD'
                   MOVE 1 TO RETURN-CODE
           END-EVALUATE.
